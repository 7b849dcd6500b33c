# frozen_string_literal: true

# redis-rb transactions through sessproxy: multi { |tx| … }, one whose
# write hits a destroyed session, and WATCH then MULTI.

require 'redis'
require_relative 'driver'

host, port = proxy_address
r = Redis.new(host: host, port: port, timeout: 10)

# A transaction's replies, errors (Redis::CommandError in place in the
# array, as redis-rb hands them over) as {"error": message}.
def replies(out)
  out&.map { |v| v.is_a?(Redis::CommandError) ? { 'error' => v.message } : v }
end

# A future's reply, {"error": message} for an error, "not ready" for one
# that redis-rb left unset when it raised an earlier error.
def future_value(future)
  future.value
rescue Redis::FutureNotReady
  'not ready'
rescue Redis::CommandError => e
  { 'error' => e.message }
end

serve(
  'multi' => lambda do |a, b, pa, pb|
    replies(r.multi do |tx|
      tx.set(a, pa)
      tx.set(b, pb)
      tx.expire(b, 100)
    end)
  end,
  # redis-rb 4 raises the first error reply of EXEC's array (the commands
  # after it still ran in Redis) and leaves it in that command's future; the
  # futures before it hold their replies, those after it are left unset.
  'multi_tombstone' => lambda do |a, gone, pa|
    futures = []
    raised = nil
    begin
      r.multi do |tx|
        futures << tx.set(a, pa) << tx.set(gone, pa) << tx.expire(a, 120)
      end
    rescue Redis::CommandError => e
      raised = e.message
    end
    { 'raised' => raised, 'replies' => futures.map { |f| future_value(f) } }
  end,
  # WATCH and GET in one step, MULTI … EXEC in the next, so that the test
  # can write the key in between.
  'watch' => lambda do |key|
    r.watch(key)
    r.get(key)
  end,
  'multi_set' => ->(key, payload) { replies(r.multi { |tx| tx.set(key, payload) }) }
)
