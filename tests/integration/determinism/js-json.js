const o = {z: 1, a: [true, null, "x"], m: {k: 2.5}}; console.log(JSON.stringify(o)); console.log(JSON.stringify(Object.keys(o).sort()))
