#!/usr/bin/env node
// An h2 client that accepts server pushes, for tornado_spdy's push tests: Node's
// built-in `http2` module (libnghttp2), no npm package.
//
//   node push_client.js --port N [--host H] [--plain] [--window-size N] --plan JSON
//       Connects to H:N (TLS with ALPN h2, certificate not checked; --plain: h2c by
//       prior knowledge), runs the plan (a JSON list of {"path", "headers"}) on one
//       connection, waits for every response and every push, and prints one JSON
//       line {"alpn", "responses": [...], "pushes": [...]}: each response is
//       {path, status, headers, body_sha256, body_length}, each push {path,
//       parent_path (the plan's path when it has one request), request_headers,
//       status, headers, body_sha256, body_length}.
//       On failure it prints {"error": "...", "partial": {...}} and exits with 1.
'use strict'

const crypto = require('crypto')
const http2 = require('http2')

function parseArgs (argv) {
  const opts = { host: '127.0.0.1', port: null, plain: false, plan: null, windowSize: null, timeout: 50 }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) throw new Error('missing value for ' + a)
      return argv[++i]
    }
    if (a === '--port') opts.port = parseInt(next(), 10)
    else if (a === '--host') opts.host = next()
    else if (a === '--plain') opts.plain = true
    else if (a === '--plan') opts.plan = JSON.parse(next())
    else if (a === '--window-size') opts.windowSize = parseInt(next(), 10)
    else if (a === '--timeout') opts.timeout = parseFloat(next())
    else throw new Error('unknown argument ' + a)
  }
  if (!opts.port || !Array.isArray(opts.plan)) {
    throw new Error('usage: push_client.js --port N --plan JSON')
  }
  return opts
}

function collect (stream, record, onDone) {
  const hash = crypto.createHash('sha256')
  let length = 0
  stream.on('data', (chunk) => { hash.update(chunk); length += chunk.length })
  stream.on('end', () => {
    record.body_sha256 = hash.digest('hex')
    record.body_length = length
    onDone(null)
  })
  stream.on('error', (err) => onDone(err))
}

function plainHeaders (headers) {
  const result = {}
  for (const [name, value] of Object.entries(headers)) {
    if (typeof name === 'string') result[name] = value
  }
  return result
}

function main () {
  let opts
  try {
    opts = parseArgs(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(err.message + '\n')
    process.exit(2)
  }
  const responses = opts.plan.map((r) => ({ path: r.path }))
  const pushes = []
  let pending = 0
  let finished = false

  function finish (code, result) {
    if (finished) return
    finished = true
    process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(code))
  }
  const timer = setTimeout(() => finish(1, { error: 'timeout after ' + opts.timeout + ' s', partial: { responses, pushes } }), opts.timeout * 1000)

  function fail (what, err) {
    clearTimeout(timer)
    finish(1, { error: what + ': ' + (err && err.message ? err.message : String(err)), partial: { responses, pushes } })
  }

  const settings = { enablePush: true }
  if (opts.windowSize) settings.initialWindowSize = opts.windowSize
  const scheme = opts.plain ? 'http' : 'https'
  const session = http2.connect(scheme + '://' + opts.host + ':' + opts.port, {
    rejectUnauthorized: false,
    ALPNProtocols: ['h2'],
    settings: settings
  })
  session.on('error', (err) => fail('session', err))

  function done () {
    if (--pending !== 0) return
    clearTimeout(timer)
    const result = {
      alpn: opts.plain ? null : (session.alpnProtocol || null),
      responses: responses,
      pushes: pushes
    }
    session.close(() => finish(0, result))
    setTimeout(() => finish(0, result), 1000).unref()
  }

  // Pushes: 'stream' events on the client session, one per PUSH_PROMISE.
  session.on('stream', (stream, requestHeaders) => {
    // Node does not say which stream a push was promised on: with one request in
    // the plan, it is that one.
    const push = {
      path: requestHeaders[':path'],
      parent_path: responses.length === 1 ? responses[0].path : null,
      request_headers: plainHeaders(requestHeaders)
    }
    pushes.push(push)
    pending++
    stream.on('push', (headers) => {
      push.status = headers[':status']
      push.headers = plainHeaders(headers)
    })
    collect(stream, push, (err) => {
      if (err) return fail('push ' + push.path, err)
      done()
    })
  })

  session.on('connect', () => {
    opts.plan.forEach((r, index) => {
      const entry = responses[index]
      pending++
      const headers = Object.assign({ ':method': 'GET', ':path': r.path }, r.headers || {})
      const req = session.request(headers, { endStream: true })
      req.on('response', (headers) => {
        entry.status = headers[':status']
        entry.headers = plainHeaders(headers)
      })
      collect(req, entry, (err) => {
        if (err) return fail('request ' + r.path, err)
        done()
      })
    })
  })
}

main()
