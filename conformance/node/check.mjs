// Runs slice.mjs against the cases tests/test_conformance.py writes (JSON, argv[2]) and prints
// what it did (JSON), with a small fake of @azure/event-hubs' producer and consumer surface.
import { readFileSync } from "node:fs";
import {
  admit, assignedIds, fenceOf, parseFences, partitionFor, routingProperties, sendToSlice,
  startPosition, subscribeToSlice,
} from "./slice.mjs";

const cases = JSON.parse(readFileSync(process.argv[2], "utf8"));
const time = (v) => (v instanceof Date ? v.toISOString() : v);
const position = (p) => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, time(v)]));
const fromJson = (p) => (p.enqueuedOn ? { ...p, enqueuedOn: new Date(p.enqueuedOn) } : p);

// The client surface the kit uses, refusing what the real one refuses.
class FakeProducer {
  constructor(partitionCount) { this.ids = [...Array(partitionCount).keys()].map(String); this.sent = []; }
  async createBatch(options = {}) {
    if (options.partitionId !== undefined && options.partitionKey !== undefined)
      throw new Error("partitionId and partitionKey cannot both be set");
    if (options.partitionId !== undefined && !this.ids.includes(options.partitionId))
      throw new Error(`no partition ${options.partitionId}`);
    const events = [];
    return { options, events, tryAdd: (e) => (events.push(e), true) };
  }
  async sendBatch(batch) { for (const e of batch.events) this.sent.push({ ...batch.options, ...e }); }
}
class FakeConsumer {
  constructor(partitions) { this.partitions = partitions; this.subscribed = []; }
  async getPartitionIds() { return Object.keys(this.partitions); }
  subscribe(id, handlers, options) {
    if (!(id in this.partitions)) throw new Error(`no partition ${id}`);
    this.subscribed.push({ id, startPosition: position(options.startPosition) });
    const events = this.partitions[id].map((e) => ({ ...e, enqueuedTimeUtc: new Date(e.enqueuedTimeUtc) }));
    return handlers.processEvents(events, { partitionId: id });
  }
}

const out = {};
out.partitions = cases.partitions.map(({ key, ids }) => partitionFor(key, ids));
out.assigned = cases.assigned.map((env) => {
  try { return assignedIds(env) ?? null; } catch (e) { return { error: e.message }; }
});
out.routing = cases.routing.map((env) => routingProperties(env));
out.fences = cases.fences.map(({ raw, lookups }) => {
  let fences;
  try { fences = parseFences(raw); } catch (e) { return { error: e.message }; }
  return lookups.map(({ hub, id, wanted }) => {
    const fence = fenceOf(fences, hub, id);
    return { fence: fence === undefined ? null : time(fence), start: position(startPosition(fence, fromJson(wanted))) };
  });
});
out.admit = cases.admit.map(({ fence, events }) => {
  const f = fence === null ? undefined : typeof fence === "string" ? parseFences(`*=${fence}`)["*"] : fence;
  return events.map((e) => admit({ ...e, enqueuedTimeUtc: new Date(e.enqueuedTimeUtc) }, f));
});
out.sends = [];
for (const { env, partitionCount, events } of cases.sends) {
  const producer = new FakeProducer(partitionCount);
  for (const { body, key, properties } of events) await sendToSlice(producer, body, { key, properties }, env);
  out.sends.push(producer.sent);
}
out.receives = [];
for (const { env, hub, partitions } of cases.receives) {
  const consumer = new FakeConsumer(partitions);
  const got = [];
  await Promise.all(await subscribeToSlice(consumer, hub, {
    processEvents: async (events, context) => { for (const e of events) got.push([context.partitionId, e.sequenceNumber]); },
    processError: async () => {},
  }, {}, env));
  out.receives.push({ subscribed: consumer.subscribed, got });
}
process.stdout.write(JSON.stringify(out));
