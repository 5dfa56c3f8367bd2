'use strict';
const { log, blobs } = require('runtime');
exports.greet = function (args) {
  log.info('greeting', { who: args.who });
  const out = blobs.writeJson({ hello: args.who });
  return { greeting: 'hello ' + args.who, blob: out };
};
