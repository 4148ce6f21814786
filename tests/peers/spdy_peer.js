#!/usr/bin/env node
// An independent SPDY peer for tornado_spdy's interoperability tests.
//
// It drives npm's `spdy-transport` (3.0.0, pinned in package.json / package-lock.json)
// directly over `net` / `tls` sockets; the high-level `spdy` package is not used (see
// /work/shared/INTEROP.md for why).
//
//   node spdy_peer.js server --protocol spdy/3.1|spdy/3|spdy/2 [--tls --cert F --key F]
//       Listens on 127.0.0.1, port 0; prints one JSON line {"port": N} on stdout, then
//       serves every connection:
//         GET  /hello     200 "hello world"
//         POST /echo      200 echoing the request body
//         GET  /bytes/N   200 with N bytes of the pattern byte[i] = i % 251
//         GET  /push      200 "pushed-parent", pushing /pushed.js (100000 pattern bytes,
//                         content-type application/javascript)
//       Exits when stdin closes, and on SIGTERM / SIGINT. Diagnostics go to stderr.
//
//   node spdy_peer.js client --protocol P --port N [--tls] [--host H] --plan JSON
//       Connects to 127.0.0.1:N, runs the plan (a JSON list of
//       {"method", "path", "body_size"}) concurrently on one connection and prints one
//       JSON line {"protocol", "alpn", "responses": [...], "pushes": [...]}; each
//       response is {method, path, status, headers, body_sha256, body_length} and each
//       push {path, parent_path, status, request_headers, headers, body_sha256,
//       body_length}. On failure it prints {"error": "..."} and exits with status 1.
//
// The server also takes --guess-version (do not tell spdy-transport the version: it
// learns 2 or 3 from the first control frame, as a node-spdy server on plain TCP
// does) and --auto-spdy31 (its autoSpdy31 option: switch to 3.1 on the first
// WINDOW_UPDATE for stream 0).
//
// Both modes take --window-size N (the spdy-transport connection option windowSize:
// the receive window this side advertises, 1 MiB by default) and --compress (turn on
// zlib compression of header blocks; spdy-transport stores them, level 0, otherwise).
'use strict'

const crypto = require('crypto')
const fs = require('fs')
const net = require('net')
const tls = require('tls')
const transport = require('spdy-transport')

const PROTOCOLS = { 'spdy/2': 2, 'spdy/3': 3, 'spdy/3.1': 3.1 }
const PUSH_SIZE = 100000

function log (...args) {
  process.stderr.write('[spdy_peer ' + process.pid + '] ' + args.join(' ') + '\n')
}

function parseArgs (argv) {
  const opts = {
    mode: argv[0],
    protocol: 'spdy/3.1',
    tls: false,
    cert: null,
    key: null,
    port: null,
    host: '127.0.0.1',
    plan: null,
    windowSize: undefined,
    compress: false,
    guessVersion: false,
    autoSpdy31: false,
    timeout: 50
  }
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) throw new Error('missing value for ' + a)
      return argv[++i]
    }
    if (a === '--protocol') opts.protocol = next()
    else if (a === '--tls') opts.tls = true
    else if (a === '--cert') opts.cert = next()
    else if (a === '--key') opts.key = next()
    else if (a === '--port') opts.port = parseInt(next(), 10)
    else if (a === '--host') opts.host = next()
    else if (a === '--plan') opts.plan = JSON.parse(next())
    else if (a === '--window-size') opts.windowSize = parseInt(next(), 10)
    else if (a === '--compress') opts.compress = true
    else if (a === '--guess-version') opts.guessVersion = true
    else if (a === '--auto-spdy31') opts.autoSpdy31 = true
    else if (a === '--timeout') opts.timeout = parseFloat(next())
    else throw new Error('unknown argument ' + a)
  }
  if (opts.mode !== 'server' && opts.mode !== 'client') {
    throw new Error('usage: spdy_peer.js server|client --protocol P ...')
  }
  if (!(opts.protocol in PROTOCOLS)) {
    throw new Error('unsupported protocol ' + opts.protocol)
  }
  return opts
}

// byte[i] = i % 251, for i in [offset, offset + n)
function pattern (n, offset) {
  offset = offset || 0
  const buf = Buffer.allocUnsafe(n)
  let v = offset % 251
  for (let i = 0; i < n; i++) {
    buf[i] = v
    v = v === 250 ? 0 : v + 1
  }
  return buf
}

// spdy-transport writes `:scheme: https` into every SYN_STREAM it makes (requests and
// pushes), whatever the headers say; its framer takes the scheme only as a frame
// argument that the Stream API never passes. Give this connection's framer the right
// scheme.
function setScheme (connection, scheme) {
  const framer = connection._spdyState.framer
  const requestFrame = framer.requestFrame
  const pushFrame = framer.pushFrame
  framer.requestFrame = function (frame, callback) {
    return requestFrame.call(this, Object.assign({}, frame, { scheme: scheme }), callback)
  }
  framer.pushFrame = function (frame, callback) {
    return pushFrame.call(this, Object.assign({}, frame, { scheme: scheme }), callback)
  }
}

function createConnection (socket, opts, isServer) {
  // Without this, Nagle's algorithm holds back small DATA frames until the peer's
  // (delayed) ACK: a flow-controlled download then crawls at a few MB/s.
  socket.setNoDelay(true)
  const connection = transport.connection.create(socket, {
    protocol: 'spdy',
    isServer: isServer,
    windowSize: opts.windowSize,
    headerCompression: opts.compress,
    autoSpdy31: opts.autoSpdy31
  })
  setScheme(connection, opts.tls ? 'https' : 'http')
  // The version is known from the command line (over TLS, ALPN agreed on it): say it
  // rather than let the server guess it from the first frame (a guess that can never
  // say 3.1, as SPDY/3.1 frames carry version 3), unless --guess-version asks for
  // the guess, as a node-spdy server on plain TCP makes it.
  if (!(isServer && opts.guessVersion)) connection.start(PROTOCOLS[opts.protocol])
  return connection
}

// ---------------------------------------------------------------------------- server

function respond (stream, status, headers, body) {
  headers = Object.assign({ 'content-length': String(body.length) }, headers)
  stream.respond(status, headers)
  stream.end(body)
}

function handleStream (stream, connId, opts) {
  const method = stream.method
  const path = stream.path
  const chunks = []
  let length = 0
  stream.on('error', (err) => log('conn', connId, 'stream', stream.id, method, path, 'error:', err.message))
  stream.on('data', (chunk) => { chunks.push(chunk); length += chunk.length })
  stream.on('end', () => {
    log('conn', connId, 'stream', stream.id, method, path, 'request body', length)
    let m
    if (method === 'GET' && path === '/hello') {
      respond(stream, 200, { 'content-type': 'text/plain' }, Buffer.from('hello world'))
    } else if (method === 'POST' && path === '/echo') {
      respond(stream, 200, { 'content-type': 'application/octet-stream' }, Buffer.concat(chunks, length))
    } else if (method === 'GET' && (m = /^\/bytes\/(\d+)$/.exec(path))) {
      respond(stream, 200, { 'content-type': 'application/octet-stream' }, pattern(parseInt(m[1], 10)))
    } else if (method === 'GET' && path === '/push') {
      const parentBody = Buffer.from('pushed-parent')
      stream.respond(200, {
        'content-type': 'text/plain',
        'content-length': String(parentBody.length)
      })
      // The push SYN_STREAM carries :method, :path, :scheme, :host, :version and
      // :status (spdy-transport's own client insists on all of them there).
      const pushBody = pattern(PUSH_SIZE)
      const push = stream.pushPromise({
        method: 'GET',
        path: '/pushed.js',
        host: stream.host || (stream.headers && stream.headers[':authority']),
        status: 200,
        headers: {},
        response: {
          'content-type': 'application/javascript',
          'content-length': String(pushBody.length)
        }
      }, (err) => {
        if (err) log('conn', connId, 'push failed:', err.message)
      })
      push.on('error', (err) => log('conn', connId, 'push stream error:', err.message))
      push.end(pushBody)
      stream.end(parentBody)
    } else {
      respond(stream, 404, { 'content-type': 'text/plain' }, Buffer.from('not found'))
    }
  })
}

function serve (opts) {
  let nextConnId = 1
  const sockets = new Set()

  function onSocket (socket) {
    const connId = nextConnId++
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', (err) => log('conn', connId, 'socket error:', err.message))
    if (opts.tls && socket.alpnProtocol !== opts.protocol) {
      log('conn', connId, 'ALPN chose', JSON.stringify(socket.alpnProtocol), 'not', opts.protocol, '- closing')
      socket.destroy()
      return
    }
    log('conn', connId, 'open', opts.tls ? 'tls alpn=' + socket.alpnProtocol : 'plain')
    const connection = createConnection(socket, opts, true)
    connection.on('error', (err) => log('conn', connId, 'connection error:', err.message))
    connection.on('close', (err) => {
      // spdy-transport closes with Error('Fatal error: OK') after a GOAWAY(OK) too.
      if (err && err.message !== 'Fatal error: OK') log('conn', connId, 'closed with error:', err.message)
      else log('conn', connId, 'closed')
    })
    connection.on('stream', (stream) => handleStream(stream, connId, opts))
  }

  let server
  if (opts.tls) {
    server = tls.createServer({
      key: fs.readFileSync(opts.key),
      cert: fs.readFileSync(opts.cert),
      ALPNProtocols: [opts.protocol]
    }, onSocket)
    server.on('tlsClientError', (err) => log('TLS client error:', err.message))
  } else {
    server = net.createServer(onSocket)
  }
  server.on('error', (err) => {
    log('server error:', err.message)
    process.exit(1)
  })
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n')
  })

  function shutdown (why) {
    log('exiting:', why)
    server.close()
    for (const s of sockets) s.destroy()
    process.exit(0)
  }
  process.stdin.on('end', () => shutdown('stdin closed'))
  process.stdin.on('error', () => shutdown('stdin error'))
  process.stdin.resume()
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))
}

// ---------------------------------------------------------------------------- client

function collect (stream, onDone) {
  const hash = crypto.createHash('sha256')
  let length = 0
  stream.on('data', (chunk) => { hash.update(chunk); length += chunk.length })
  stream.on('end', () => onDone(null, { body_sha256: hash.digest('hex'), body_length: length }))
  stream.on('error', (err) => onDone(err))
}

function runClient (opts) {
  if (!Array.isArray(opts.plan)) throw new Error('--plan must be a JSON list')
  if (!opts.port) throw new Error('--port is required')

  let finished = false
  function finish (code, result) {
    if (finished) return
    finished = true
    process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code))
  }
  const timer = setTimeout(() => finish(1, { error: 'timeout after ' + opts.timeout + ' s', partial: snapshot() }), opts.timeout * 1000)

  const authority = opts.host + ':' + opts.port
  const responses = opts.plan.map((r) => ({ method: r.method || 'GET', path: r.path }))
  const pushes = []
  let pending = 0

  function snapshot () {
    return { responses: responses, pushes: pushes }
  }

  function done () {
    if (--pending !== 0) return
    clearTimeout(timer)
    const result = {
      protocol: opts.protocol,
      alpn: opts.tls ? socket.alpnProtocol : null,
      responses: responses,
      pushes: pushes
    }
    // Say goodbye properly (GOAWAY), but do not wait long for the peer to close.
    connection.end(() => finish(0, result))
    setTimeout(() => finish(0, result), 1000).unref()
  }

  function fail (what, err) {
    clearTimeout(timer)
    finish(1, { error: what + ': ' + (err && err.message ? err.message : String(err)), partial: snapshot() })
  }

  let socket
  if (opts.tls) {
    socket = tls.connect({
      host: opts.host,
      port: opts.port,
      servername: opts.host === '127.0.0.1' ? undefined : opts.host,
      rejectUnauthorized: false,
      ALPNProtocols: [opts.protocol]
    })
  } else {
    socket = net.connect({ host: opts.host, port: opts.port })
  }
  socket.on('error', (err) => fail('socket', err))

  const connection = createConnection(socket, opts, false)
  connection.on('error', (err) => fail('connection', err))

  function start () {
    if (opts.tls && socket.alpnProtocol !== opts.protocol) {
      return fail('ALPN', new Error('server chose ' + JSON.stringify(socket.alpnProtocol)))
    }
    opts.plan.forEach((r, index) => {
      const entry = responses[index]
      pending++
      const stream = connection.request({
        method: entry.method,
        path: r.path,
        host: authority,
        headers: r.headers || {}
      }, (err) => {
        if (err) return fail('request ' + r.path, err)
        // Only now, once the SYN_STREAM is queued: a write() before that makes
        // spdy-transport send this SYN_STREAM ahead of earlier streams' (ids out of
        // order), and its server silently drops a SYN_STREAM whose id is lower than
        // one it has seen.
        const size = r.body_size || 0
        if (entry.method !== 'GET' && entry.method !== 'HEAD') {
          if (size > 0) stream.write(pattern(size))
          stream.end()
        }
      })
      stream.on('response', (status, headers) => {
        entry.status = status
        entry.headers = headers
      })
      stream.on('pushPromise', (push) => {
        const p = { path: push.path, parent_path: r.path, request_headers: push.headers }
        pushes.push(p)
        pending++
        push.on('response', (status, headers) => {
          p.status = status
          p.headers = headers
        })
        collect(push, (err, body) => {
          if (err) return fail('push ' + push.path, err)
          Object.assign(p, body)
          done()
        })
      })
      collect(stream, (err, body) => {
        if (err) return fail('request ' + r.path, err)
        Object.assign(entry, body)
        done()
      })
    })
  }

  if (opts.tls) socket.once('secureConnect', start)
  else socket.once('connect', start)
}

// ------------------------------------------------------------------------------ main

function main () {
  let opts
  try {
    opts = parseArgs(process.argv.slice(2))
  } catch (err) {
    log(err.message)
    process.exit(2)
  }
  if (opts.mode === 'server') serve(opts)
  else runClient(opts)
}

main()
