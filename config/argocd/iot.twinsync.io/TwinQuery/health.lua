-- Argo CD health check for iot.twinsync.io/TwinQuery.
--
-- Healthy   Ready=True for the current generation: status holds the result
--           of the query; the message gives the row count and says when the
--           hub's query budget slows refreshes (Throttled=True).
-- Suspended the iot.twinsync.io/paused annotation is "true".
-- Degraded  Stalled=True (an invalid query, refused credentials), or
--           Ready=False for any reason but progress or throttling.
-- Progressing otherwise: not yet observed or not yet run.
local hs = {}

local function condition(type)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function current(c)
  return c ~= nil and (obj.metadata.generation == nil or c.observedGeneration == nil
    or c.observedGeneration >= obj.metadata.generation)
end

local transient = { Progressing = true, Throttled = true, BudgetShort = true }

if obj.metadata.annotations ~= nil and obj.metadata.annotations["iot.twinsync.io/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Reconciliation is paused by the iot.twinsync.io/paused annotation"
  return hs
end

local stalled = condition("Stalled")
if current(stalled) and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "") .. ": " .. (stalled.message or "")
  return hs
end

local ready = condition("Ready")
if ready == nil or not current(ready)
  or (obj.metadata.generation ~= nil and (obj.status.observedGeneration or 0) < obj.metadata.generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to run generation " .. tostring(obj.metadata.generation or 1) .. " of the query"
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  local count = obj.status.count or 0
  hs.message = "The query returned " .. tostring(count) .. (count == 1 and " row" or " rows")
  if obj.status.truncated then
    hs.message = hs.message .. " (status truncated)"
  end
  local throttled = condition("Throttled")
  if current(throttled) and throttled.status == "True" then
    hs.message = hs.message .. "; " .. (throttled.message or "refreshes are slowed by the hub's query budget")
  end
  return hs
end

if ready.status == "False" and not transient[ready.reason] then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = (ready.reason or "") .. ": " .. (ready.message or "")
return hs
