'use strict'

// The package entry point: everything the native addon exports, with the
// Connection and Session classes finished in ./connection.js and
// ./session.js (default clock, coded argument errors), plus the socket
// hosts: ./host.js (WebSocket messages) and ./session-host.js (event
// vectors over those WebSockets).

const { native, Connection, now } = require('./connection')
const session = require('./session')
const host = require('./host')
const sessionHost = require('./session-host')

module.exports = { ...native, Connection, now, ...session, ...host, ...sessionHost }
