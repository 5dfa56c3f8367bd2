// Function return values a result cannot carry as they are (issue 14 item 5), from JavaScript:
// U+0000, nesting deeper than a result allows, a lone surrogate. Each must come back exactly or
// make the status error with the reason.
function main(args) {
  if (args.k === 'nul') return 'a\u0000b';
  if (args.k === 'surrogate') return '\ud800';
  if (args.k === 'deep') {
    let v = 1;
    for (let i = 0; i < 32; i++) v = [v];
    return v;
  }
  return null;
}
