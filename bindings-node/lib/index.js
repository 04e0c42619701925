'use strict'

// The package entry point: everything the native addon exports, with the
// Connection class finished in ./connection.js, plus the socket hosts.

const { native, Connection, now } = require('./connection')
const host = require('./host')

module.exports = { ...native, Connection, now, ...host }
