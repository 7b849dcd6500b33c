# frozen_string_literal: true

# Rack::Session::Redis (redis-rack) through sessproxy, with its defaults
# (redis_server's path /0/rack:session, no expire_after): a Rack app called
# with Rack::MockRequest, the session cookie carried from one request to the
# next as a browser would. Each step is one request; 'slow_start' begins a
# request in a thread that reads the session and waits, 'slow_finish' lets
# it modify the session and end, so that its write comes after a logout.

require 'rack'
require 'rack/session/redis'
require_relative 'driver'

host, port = proxy_address

reading = Queue.new # the slow request has read its session
release = Queue.new # the slow request may go on

app = lambda do |env|
  session = Rack::Request.new(env).session
  body = ''
  case env['PATH_INFO']
  when '/login'
    session['user_id'] = 42
  when '/read'
    body = session['user_id'].to_s
  when '/logout'
    session.destroy # what Rails' reset_session does
  when '/slow'
    body = session['user_id'].to_s
    reading << true
    release.pop
    session['cart'] = 3
  end
  [200, { 'content-type' => 'text/plain' }, [body]]
end
stack = Rack::Session::Redis.new(app, redis_server: "redis://#{host}:#{port}/0/rack:session")

cookie = nil # the browser's rack.session cookie

# One request with the cookie; it keeps the cookie the response sets.
request = lambda do |path, sent|
  env = Rack::MockRequest.env_for(path, 'HTTP_COOKIE' => sent ? "rack.session=#{sent}" : '')
  status, headers, body = stack.call(env)
  text = +''
  body.each { |part| text << part }
  set = headers['set-cookie'] || headers['Set-Cookie']
  got = set && set[/\Arack\.session=([^;]*)/, 1]
  { 'status' => status, 'body' => text, 'cookie' => got, 'errors' => env['rack.errors'].string }
end

step = lambda do |path|
  res = request.call(path, cookie)
  cookie = res['cookie'] if res['cookie']
  res
end

slow = nil
serve(
  'login' => -> { step.call('/login') },
  'read' => -> { step.call('/read') },
  'logout' => -> { step.call('/logout') },
  'slow_start' => lambda do
    sent = cookie
    slow = Thread.new do
      request.call('/slow', sent)
    rescue StandardError => e
      { 'raised' => "#{e.class}: #{e.message}" }
    end
    reading.pop
    true
  end,
  'slow_finish' => lambda do
    release << true
    slow.value
  end
)
