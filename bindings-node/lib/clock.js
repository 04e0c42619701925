'use strict'

// The engine reads no clock: every input call is told the time. This is the
// default, a monotonic millisecond clock (performance.now() never goes back,
// unlike Date.now()).
const { performance } = require('node:perf_hooks')

/** Milliseconds on the monotonic clock the package passes to the engine. */
function now() {
  return performance.now()
}

module.exports = { now }
