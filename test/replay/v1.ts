/**
 * What replay fixture v1 (test/fixtures/replay/v1) holds, case by case, and how each of its runs
 * must end once today's engine has finished it. Like the fixture, this is written once: a
 * regenerated fixture that lost a case, or stored one differently, no longer matches it.
 *
 * Node expectations read `"state"`, or `"state arrived/expected"` for a join or collect.
 */
import type { ReplayCase } from "./ReplayCase.ts"

const chain = (input: number, stored: ReplayCase["stored"], ranAtReplay: ReadonlyArray<string>): ReplayCase => ({
  stored,
  final: { status: "succeeded", output: (input + 1) * 2 + 1 },
  ranAtReplay,
})

export const v1: Readonly<Record<string, ReplayCase>> = {
  "chain-ready": chain(1, {
    status: "running",
    nodes: { "0-replay.inc": "succeeded", "1-replay.double": "ready", "2-replay.inc": "waiting" },
  }, ["1-replay.double", "2-replay.inc"]),
  "chain-dispatched": chain(2, {
    status: "running",
    nodes: { "0-replay.inc": "succeeded", "1-replay.double": "dispatched", "2-replay.inc": "waiting" },
  }, ["1-replay.double", "2-replay.inc"]),
  "chain-running": chain(3, {
    status: "running",
    nodes: { "0-replay.inc": "succeeded", "1-replay.double": "running", "2-replay.inc": "waiting" },
  }, ["1-replay.double", "2-replay.inc"]),
  "chain-queued": chain(5, {
    status: "running",
    nodes: { "0-replay.inc": "succeeded", "1-replay.double": "ready", "2-replay.inc": "waiting" },
  }, ["1-replay.double", "2-replay.inc"]),
  "chain-later": chain(4, {
    status: "running",
    nodes: { "0-replay.inc": "ready", "1-replay.double": "waiting", "2-replay.inc": "waiting" },
  }, ["0-replay.inc", "1-replay.double", "2-replay.inc"]),
  "chain-done": chain(10, {
    status: "succeeded",
    nodes: { "0-replay.inc": "succeeded", "1-replay.double": "succeeded", "2-replay.inc": "succeeded" },
  }, []),
  "group-partial": {
    stored: {
      status: "running",
      nodes: {
        "0-replay.inc": "succeeded",
        "1.0.0-replay.double": "succeeded",
        "1.1.0-replay.inc": "succeeded",
        "1.1.1-replay.double": "ready",
        "1.2.0-replay.neg": "succeeded",
        "1-group": "waiting 2/3",
        "2-replay.sum": "waiting",
      },
    },
    // inc 1 → 2; members: double 4, inc+double 6, neg -2
    final: { status: "succeeded", output: 8 },
    ranAtReplay: ["1.1.1-replay.double", "2-replay.sum"],
  },
  "map-partial": {
    stored: {
      status: "running",
      nodes: {
        "0-replay.range": "succeeded",
        "1-map": "succeeded",
        "1-collect": "waiting 1/3",
        "1.m.0-replay.double#0": "succeeded",
        "1.m.1.0.0-replay.inc#0": "succeeded",
        "1.m.1.1.0-replay.neg#0": "succeeded",
        "1.m.1-group#0": "succeeded 2/2",
        "1.m.0-replay.double#1": "succeeded",
        "1.m.1.0.0-replay.inc#1": "succeeded",
        "1.m.1.1.0-replay.neg#1": "ready",
        "1.m.1-group#1": "waiting 1/2",
        "1.m.0-replay.double#2": "ready",
        "1.m.1.0.0-replay.inc#2": "waiting",
        "1.m.1.1.0-replay.neg#2": "waiting",
        "1.m.1-group#2": "waiting 0/2",
        "2-replay.flatten": "waiting",
      },
    },
    // element k: double 2k, then [2k + 1, -2k], collected in element order
    final: { status: "succeeded", output: [3, -2, 5, -4, 7, -6] },
    ranAtReplay: ["1.m.1.1.0-replay.neg#1", "1.m.0-replay.double#2", "1.m.1.0.0-replay.inc#2", "1.m.1.1.0-replay.neg#2", "2-replay.flatten"],
  },
  "iterate-partial": {
    stored: {
      status: "running",
      nodes: {
        "0-replay.from": "succeeded",
        "1-iterate": "succeeded",
        "1.s-shard#0": "succeeded",
        "1.s-shard#1": "ready",
        "1-gather": "waiting 1/2",
        "2-replay.tally": "waiting",
      },
    },
    final: { status: "succeeded", output: { iteration: "replay.items", shards: 2, rows: 12, perShard: [6, 6] } },
    // shard 1's pages (each a callback of its own) are checked against its checkpoint, row by row
    ranAtReplay: ["1.s-shard#1", "2-replay.tally"],
  },
  "delay-pending": {
    stored: { status: "running", nodes: { "0-replay.inc": "succeeded", "1-delay": "ready", "2-replay.double": "waiting" } },
    final: { status: "succeeded", output: 12 },
    ranAtReplay: ["2-replay.double"],
  },
  "retry-scheduled": {
    stored: { status: "running", nodes: { "0-replay.inc": "succeeded", "1-replay.flaky": "ready" } },
    final: { status: "succeeded", output: { value: 200, attempt: 2 } },
    ranAtReplay: ["1-replay.flaky"],
  },
  "onerror-pending": {
    stored: {
      status: "failing",
      nodes: { "0-replay.inc": "succeeded", "1-replay.doomed": "failed", "2-replay.double": "cancelled", "e0.0-replay.cleanup": "ready" },
    },
    final: {
      status: "failed",
      error: "Doom",
      nodes: { "1-replay.doomed": "failed", "2-replay.double": "cancelled" },
      outputs: { "e0.0-replay.cleanup": "cleaned up 1-replay.doomed (Doom, 1 attempt) input 2" },
    },
    ranAtReplay: ["e0.0-replay.cleanup"],
  },
  parked: {
    stored: { status: "parked", nodes: { "0-replay.inc": "succeeded", "1-replay.ghost": "parked" } },
    final: { status: "succeeded", output: 6 },
    ranAtReplay: ["1-replay.ghost"],
  },
  "revoked-downstream": {
    stored: {
      status: "revoked",
      nodes: { "0-replay.inc": "succeeded", "1-replay.double": "revoked", "2-replay.inc": "revoked", "r.0-replay.onRevoke": "ready" },
    },
    final: {
      status: "revoked",
      error: "Revoked",
      nodes: { "1-replay.double": "revoked", "2-replay.inc": "revoked" },
      outputs: { "r.0-replay.onRevoke": "revoked at 1-replay.double: replay fixture" },
    },
    ranAtReplay: ["r.0-replay.onRevoke"],
  },
  "idempotency-key": {
    stored: { status: "running", nodes: { "0-replay.inc": "succeeded", "1-replay.echoKey": "ready" } },
    final: { status: "succeeded", output: "2:replay-order-1" },
    ranAtReplay: ["1-replay.echoKey"],
  },
  deduplicated: {
    stored: { status: "running", nodes: { "0-replay.inc": "succeeded", "1-replay.double": "ready" } },
    final: { status: "succeeded", output: 16 },
    ranAtReplay: ["1-replay.double"],
  },
}
