let s = 0n; for (let i = 0n; i < 1000n; i++) s += i * i; console.log(s.toString(), 0.1 + 0.2, Math.pow(2, 53))
