const xs = Array.from({length: 2000}, (_, i) => (i * 7919) % 2003); xs.sort((a, b) => a - b); console.log(xs.slice(0, 5), xs.slice(-5))
