function f() { throw new TypeError("bad input") } console.log("before"); f()
