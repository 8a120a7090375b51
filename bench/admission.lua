-- wrk script: POST AdmissionReview bodies (one JSON per line of $KAR_BODIES) to /mutate in turn;
-- $KAR_DELAY_MS > 0 paces each connection (an open-loop-ish fixed rate).
local bodies = {}
for line in io.lines(os.getenv("KAR_BODIES")) do
  bodies[#bodies + 1] = line
end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
  i = (i + 1) % #bodies
  return wrk.format(nil, "/mutate", nil, bodies[i + 1])
end

local pause = tonumber(os.getenv("KAR_DELAY_MS") or "0")
if pause > 0 then
  function delay()
    return pause
  end
end
