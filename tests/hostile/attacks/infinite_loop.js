// Infinite loop: burns CPU until the wall timeout destroys the sandbox.
let x = 0;
for (;;) { x = (x * 31 + 7) | 0; }
