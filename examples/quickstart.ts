/**
 * Quickstart: a checkout workflow (reserve, charge, a group of two, summarize, a delay, and a
 * refund on error) run end to end on an embedded PostgreSQL with the Postgres worker; how each
 * node advances is in engine/ARCHITECTURE.md, the API in README.md. Prints the run's nodes in
 * graph order (the error handler last) with every node's state, tries, timing and result, then
 * what the ids and the tries mean.
 *
 *   npm start
 */
import { Effect, Schema } from "effect"
import { chain, embedded, task, TaskFailure, workflow, type RunView } from "taskgraph"

const Order = Schema.Struct({ orderId: Schema.String })
const Reserved = Schema.Struct({ orderId: Schema.String, amount: Schema.Number })
const Charged = Schema.Struct({ orderId: Schema.String, chargeId: Schema.String })
const Receipt = Schema.Struct({ sent: Schema.Boolean })
const Ticket = Schema.Struct({ ticket: Schema.String })

const reserve = task("reserve", {
  input: Order,
  output: Reserved,
  run: ({ orderId }) => Effect.succeed({ orderId, amount: 42 }),
})
let chargeTries = 0
const charge = task("charge", {
  input: Reserved,
  output: Charged,
  retry: { maxAttempts: 3, initialDelay: "200 millis" },
  // the payment provider fails once, then succeeds: the engine retries with backoff
  run: async ({ orderId }) => {
    if (++chargeTries === 1) throw new Error("payment provider timed out")
    return { orderId, chargeId: `ch_${orderId}` }
  },
})
const emailReceipt = task("emailReceipt", {
  input: Charged,
  output: Receipt,
  run: () => Effect.succeed({ sent: true }),
})
const notifyWarehouse = task("notifyWarehouse", {
  input: Charged,
  output: Ticket,
  run: ({ orderId }) => Effect.succeed({ ticket: `wh-${orderId}` }),
})
const summarize = task("summarize", {
  input: Schema.Tuple([Receipt, Ticket]),
  output: Schema.Struct({ receiptSent: Schema.Boolean, ticket: Schema.String }),
  run: ([receipt, { ticket }]) => Effect.succeed({ receiptSent: receipt.sent, ticket }),
})
const refund = task("refund", {
  input: TaskFailure,
  output: Schema.Struct({ refunded: Schema.Boolean }),
  run: (failure) => Effect.as(Effect.logWarning(`refunding after ${failure.task} failed`), { refunded: true }),
})

const checkout = workflow(
  "checkout",
  chain(reserve)
    .then(charge)
    .group([emailReceipt, notifyWarehouse])
    .then(summarize)
    .onError(refund)
    .delay(1),
)

// the nodes in graph order, the onError handler's (dormant unless a step fails for good) last
const inGraphOrder = (run: RunView): RunView["nodes"] => {
  const handlers = new Set(run.graph.nodes.filter((n) => n.role !== undefined).map((n) => n.id))
  return [...run.nodes.filter((n) => !handlers.has(n.id)), ...run.nodes.filter((n) => handlers.has(n.id))]
}

const render = (run: RunView): string => {
  const lines = [`run ${run.id}  workflow ${run.workflow}  status ${run.status.toUpperCase()}`, ""]
  lines.push(`  ${"node".padEnd(26)}${"state".padEnd(11)}${"try".padEnd(5)}${"ms".padStart(7)}  result`)
  for (const node of inGraphOrder(run)) {
    const result = node.error !== null && node.state !== "succeeded" ? `${node.error.tag}: ${node.error.message}` : JSON.stringify(node.output)
    lines.push(
      `  ${node.id.padEnd(26)}${node.state.padEnd(11)}${String(node.attempt).padEnd(5)}${String(node.durationMs ?? "").padStart(7)}  ${result ?? ""}`,
    )
  }
  const retried = run.nodes.filter((n) => n.attempt > 1).map((n) => n.id)
  lines.push(
    "",
    "How to read it:",
    "  node   the step's position in the chain, then its task: 0-reserve, 1-charge; 2.0.0-emailReceipt",
    "         is step 2 (the group), member 0, its step 0; 2-group is the join that hands summarize",
    "         both results in order; 4-delay is the durable wait; e0.0-refund is step 0 of error",
    "         handler 0 (onError), cancelled because no step failed for good.",
    `  try    the try that produced the state (every try is stored). ${retried.length > 0 ? retried.join(", ") : "1-charge"} shows try 2:`,
    "         its first try threw (the payment provider timed out), the engine recorded the failure",
    "         and retried after its backoff (retry: maxAttempts 3, initialDelay 200 ms); try 2 succeeded.",
    "  ms     how long the try took; the delay's wait is not counted.",
  )
  return lines.join("\n")
}

const tg = await embedded({ workflows: [checkout] })
try {
  const started = Date.now()
  const run = await tg.start(checkout, { orderId: "o-1001" })
  const result = await run.result({ timeout: 60 })
  console.log(render(await run.status()))
  console.log(`\nresult: ${JSON.stringify(result)}  (${Date.now() - started} ms, including a 1 s durable delay)`)
} finally {
  await tg.close()
}
