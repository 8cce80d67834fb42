-- Argo CD health check for iot.twinsync.io/DeviceTwin.
--
-- Healthy   Ready=True for the current generation: the tags and desired
--           properties are on the hub and the device reported them all.
--           Also when the twin is applied (Synced=True) and only the device
--           has not reported yet (AwaitingDevice): whether a device is
--           online is not something a sync can fix, and an application must
--           not stay Progressing for as long as a device is switched off.
-- Suspended the iot.twinsync.io/paused annotation is "true".
-- Degraded  Ready=False for a reason that needs a change to the object, its
--           Secret or the hub (credentials, an invalid twin, a missing device
--           without provisioning, an unreachable hub).
-- Progressing otherwise: not yet observed, in progress, retrying a conflict
--           or waiting out the hub's throttling.
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

local transient = { Progressing = true, Conflict = true, Throttled = true }

if obj.metadata.annotations ~= nil and obj.metadata.annotations["iot.twinsync.io/paused"] == "true" then
  hs.status = "Suspended"
  hs.message = "Reconciliation is paused by the iot.twinsync.io/paused annotation"
  return hs
end

local ready = condition("Ready")
if ready == nil or not current(ready)
  or (obj.metadata.generation ~= nil and (obj.status.observedGeneration or 0) < obj.metadata.generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile generation " .. tostring(obj.metadata.generation or 1)
  return hs
end

if ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end

local synced = condition("Synced")
if ready.reason == "AwaitingDevice" and current(synced) and synced.status == "True" then
  hs.status = "Healthy"
  hs.message = "Applied to the hub; " .. (ready.message or "waiting for the device to report")
  return hs
end

if ready.status == "False" and not transient[ready.reason] then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = (ready.reason or "") .. ": " .. (ready.message or "")
return hs
