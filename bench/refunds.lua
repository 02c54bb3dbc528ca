-- wrk script for bench_refunds and bench_ledger_size: each request refunds one unit of a
-- sale recorded by the benchmark, under an Idempotency-Key no other request uses.
--
-- Arguments (after `--` on wrk's command line): token, sales, threads, tag, refund_to.
-- Sales rotate over the request count, so each sale is refunded only a few times, as in a
-- store. Keys are "<tag>-t<thread>-n<count>": letters between short digit runs, so the card
-- number guard (13 to 19 digits in a row) never mistakes one for a card number.
-- done() prints one JSON line the benchmark parses.

local thread_no = 0

function setup(thread)
  thread_no = thread_no + 1
  thread:set("thread_id", thread_no)
end

function init(args)
  token, sales, threads, tag, refund_to = args[1], tonumber(args[2]), tonumber(args[3]), args[4], args[5]
  count = 0
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  count = count + 1
  local sale = ((count - 1) * threads + thread_id - 1) % sales
  wrk.headers["Idempotency-Key"] = string.format("%s-t%d-n%d", tag, thread_id, count)
  local body = string.format(
    '{"sale_id":"BENCH-%d","refund_to":"%s","lines":[{"line_id":"1","quantity":1,"restock":true}]}',
    sale, refund_to)
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
