/**
 * Quickstart: the checkout workflow from DESIGN.md, run end to end on an embedded PostgreSQL
 * with the Postgres worker. Prints the run's graph with every node's state, timing and result.
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

const render = (run: RunView): string => {
  const lines = [`run ${run.id}  workflow ${run.workflow}  status ${run.status.toUpperCase()}`, ""]
  lines.push(`  ${"node".padEnd(26)}${"state".padEnd(11)}${"try".padEnd(5)}${"ms".padStart(7)}  result`)
  for (const node of run.nodes) {
    const result = node.error !== null && node.state !== "succeeded" ? `${node.error.tag}: ${node.error.message}` : JSON.stringify(node.output)
    lines.push(
      `  ${node.id.padEnd(26)}${node.state.padEnd(11)}${String(node.attempt).padEnd(5)}${String(node.durationMs ?? "").padStart(7)}  ${result ?? ""}`,
    )
  }
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
