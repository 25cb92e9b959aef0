// The environment contract (docs/contract.md) for a Node.js service on @azure/event-hubs.
// Copy this file into a service, or read it as the reference: tests/test_conformance.py runs
// it with node against the same cases as devslice's Python SDK (check.mjs).
import { createHash } from "node:crypto";

// The prefix is contract.prefix; `devslice env` says so when a team renamed it.
const prefixOf = (env) => env.DEVSLICE_CONTRACT_PREFIX ?? "LOCAL_DEV_";

// Rule 1: the slice's partitions, or undefined in a shared environment (the variable unset).
// A slice without partitions is broken, not shared: refuse.
export function assignedIds(env = process.env) {
  const name = env.DEVSLICE_PARTITIONIDS_VARIABLE ?? `${prefixOf(env)}EVENTHUBS_ASSIGNEDPARTITIONIDS`;
  const raw = env[name];
  if (raw === undefined) {
    if (env[`${prefixOf(env)}SLICE`]) throw new Error(`slice ${env[`${prefixOf(env)}SLICE`]} has no partitions: ${name} is not set`);
    return undefined;
  }
  const ids = raw.split(",").map((s) => s.trim()).filter(Boolean);
  if (!ids.length || !ids.every((i) => /^\d+$/.test(i)) || new Set(ids).size !== ids.length)
    throw new Error(`${name}=${raw} is not a list of distinct partition ids`);
  return ids;
}

// A key onto the slice's partitions: the first 8 bytes of SHA-256, big-endian, modulo.
export const partitionFor = (key, ids) =>
  ids[Number(createHash("sha256").update(key).digest().readBigUInt64BE(0) % BigInt(ids.length))];

// Rule 3: the Data Explorer routing properties every event of the slice carries.
export function routingProperties(env = process.env) {
  const props = {};
  for (const [prop, name] of [["Table", "TABLE"], ["Format", "FORMAT"],
    ["IngestionMappingReference", "INGESTIONMAPPINGREFERENCE"], ["Database", "DATABASE"]]) {
    const value = env[`${prefixOf(env)}DATAEXPLORER_${name}`];
    if (value) props[prop] = value;
  }
  return props;
}

// Send one event: by partition id among the slice's partitions, with the routing properties
// (Database always the slice's; the others only where the event names none of its own).
export async function sendToSlice(producer, body, { key, properties = {} } = {}, env = process.env) {
  const ids = assignedIds(env);
  const routing = routingProperties(env);
  const props = { ...properties };
  for (const [k, v] of Object.entries(routing)) if (k === "Database" || !(k in props)) props[k] = v;
  const batch = await producer.createBatch(ids ? { partitionId: partitionFor(key ?? "", ids) }
    : key !== undefined ? { partitionKey: key } : {});
  if (!batch.tryAdd({ body, properties: props })) throw new Error("event too large for a batch");
  await producer.sendBatch(batch);
}

// Rule 2: start fences, "orders/0=1234,orders/1=-1,*=2026-12-07T02:07:49.123456Z".
// Returns { "hub/id": number | Date, "*": Date }; refuses what is not EVENTHUB/PARTITION=VALUE.
const SEQUENCE = /^(-1|0|[1-9][0-9]*)$/;
const UTC_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?Z$/;
function fenceValue(text) {
  if (SEQUENCE.test(text)) return Number(text);
  if (!UTC_TIME.test(text)) return undefined; // UTC only: a local time would move the fence
  // Date holds milliseconds, as Event Hubs' enqueued times do: a fence between two
  // milliseconds moves up to the next one, so an event enqueued before it stays out.
  const [, whole, micros = ""] = text.match(/^(.*?)(?:\.(\d+))?Z$/);
  const when = new Date(`${whole}Z`);
  if (Number.isNaN(when.getTime())) return undefined;
  const us = Number(micros.padEnd(6, "0"));
  return new Date(when.getTime() + Math.ceil(us / 1000));
}
export function parseFences(raw = process.env[`${prefixOf(process.env)}EVENTHUBS_STARTFENCE`] ?? "") {
  const fences = {};
  for (const entry of raw.split(",").map((e) => e.trim()).filter(Boolean)) {
    const i = entry.indexOf("=");
    const key = i < 0 ? entry : entry.slice(0, i);
    const value = i < 0 ? undefined : fenceValue(entry.slice(i + 1).trim());
    const [hub, id, ...rest] = key.split("/");
    if (key === "*" && value instanceof Date) fences["*"] = value;
    else if (i >= 0 && hub && /^\d+$/.test(id ?? "") && !rest.length && value !== undefined) fences[key] = value;
    else throw new Error(`LOCAL_DEV_EVENTHUBS_STARTFENCE has '${entry}', which is not EVENTHUB/PARTITION=VALUE or *=TIME`);
  }
  return fences;
}
export const fenceOf = (fences, hub, id) => fences[`${hub}/${id}`] ?? fences["*"];

// Where to start reading a partition: the fence, when the position asked for is below it.
export function startPosition(fence, wanted = { sequenceNumber: -1 }) {
  const earliest = wanted.offset === "@earliest" || wanted.sequenceNumber === -1;
  if (fence instanceof Date) {
    if (earliest || (wanted.enqueuedOn && wanted.enqueuedOn < fence)) return { enqueuedOn: fence };
  } else if (fence !== undefined && fence >= 0) {
    const first = wanted.sequenceNumber === undefined ? undefined
      : wanted.isInclusive ? wanted.sequenceNumber : wanted.sequenceNumber + 1;
    if (earliest || (first !== undefined && first <= fence)) return { sequenceNumber: fence, isInclusive: false };
  }
  return wanted;
}

// Whether an event is the slice's (not below its partition's fence), whatever the start was.
export function admit(event, fence) {
  if (fence instanceof Date) return event.enqueuedTimeUtc >= fence;
  return fence === undefined || event.sequenceNumber > fence;
}

// Consume only the slice's partitions, each from its fence on.
export async function subscribeToSlice(consumer, hub, handlers, { startPosition: wanted } = {}, env = process.env) {
  const fences = parseFences(env[`${prefixOf(env)}EVENTHUBS_STARTFENCE`] ?? "");
  const ids = assignedIds(env) ?? await consumer.getPartitionIds();
  return ids.map((id) => {
    const fence = fenceOf(fences, hub, id);
    return consumer.subscribe(id, {
      processEvents: async (events, context) =>
        handlers.processEvents(events.filter((e) => admit(e, fence)), context),
      processError: handlers.processError,
    }, { startPosition: startPosition(fence, wanted) });
  });
}
