# frozen_string_literal: true

# Runs a client's steps as the Go test asks for them, one at a time.
#
# The test writes one JSON line per step, {"step": name, "args": [...]}; the
# script runs it with its client and answers one JSON line, {"result": ...},
# so that the test can check Redis directly before the next step. A step that
# raises ends the script: the backtrace goes to stderr and it exits 1.

require 'json'

def serve(steps)
  $stdout.sync = true
  $stdin.each_line do |line|
    req = JSON.parse(line)
    begin
      result = steps.fetch(req['step']).call(*req.fetch('args', []))
    rescue StandardError => e
      warn "step #{req['step']} #{req['args'].inspect}: #{e.class}: #{e.message}\n#{e.backtrace.join("\n")}"
      exit 1
    end
    puts JSON.generate({ 'result' => result })
  end
end

# The proxy's host and port, from SESSPROXY_ADDR (host:port).
def proxy_address
  host, port = ENV.fetch('SESSPROXY_ADDR').split(':')
  [host, Integer(port)]
end
