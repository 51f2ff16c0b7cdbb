/**
 * Type tests: checked by `tsc` (npm run typecheck), never executed. Each `@ts-expect-error`
 * proves that a wrong workflow does not compile; the rest proves that a right one does.
 */
import { Context, Duration, Effect, Schema } from "effect"
import { chain, task, TaskFailure, workflow, type Chain, type Step } from "../../dsl/index.ts"
import { charge, checkout, emailReceipt, notifyWarehouse, reserve, summarize } from "../fixtures/checkout.ts"

type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
const assertType = <T extends true>(_: T) => undefined

const num = task("num", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n * 2) })
const str = task("str", { input: Schema.String, output: Schema.String, run: async (s) => s.toUpperCase() })
const nums = task("nums", { input: Schema.Number, output: Schema.Array(Schema.Number), run: (n) => Effect.succeed([n, n + 1]) })
const add = task("add", {
  input: Schema.Struct({ a: Schema.Number, b: Schema.Number }),
  output: Schema.Number,
  run: ({ a, b }) => Effect.succeed(a + b),
})


// then: output flows into input
const ok1 = chain(num).then(num)
assertType<Equals<typeof ok1, Chain<number, number, never>>>(true)
// @ts-expect-error charge needs Reserved, num yields number
chain(num).then(charge)
// @ts-expect-error str needs a string
chain(num).then(str)

// group: a tuple in declaration order
const g = chain(reserve).then(charge).group([emailReceipt, notifyWarehouse])
type G = typeof g extends Chain<infer _I, infer O, infer _R> ? O : never
assertType<Equals<G, [typeof emailReceipt.output.Type, typeof notifyWarehouse.output.Type]>>(true)
// @ts-expect-error a member that does not accept the previous output
chain(reserve).group([charge, num])
chain(reserve).then(charge).group([emailReceipt, notifyWarehouse]).then(summarize)
// @ts-expect-error summarize needs the group tuple, not one member's output
chain(reserve).then(charge).then(emailReceipt).then(summarize)

// map: requires an array, yields an array
const m = chain(nums).map(num)
assertType<Equals<typeof m, Chain<number, Array<number>, never>>>(true)
// @ts-expect-error map needs an array output
chain(num).map(num)
// @ts-expect-error the body must accept an element
chain(nums).map(str)
const mc = chain(nums).map(chain(num).then(num))
assertType<Equals<typeof mc, Chain<number, Array<number>, never>>>(true)

// bind: the injected key's type becomes the input
const bound = add.bind("a", { b: 10 })
assertType<Equals<typeof bound, Step<number, number, never>>>(true)
chain(num).then(add.bind("b", { a: 1 }))
// @ts-expect-error the fixed arguments must be the other keys
add.bind("a", { c: 1 })
// @ts-expect-error str's output is not a number
chain(str).then(add.bind("a", { b: 10 }))

// delay keeps the types; onError takes a TaskFailure handler
const d = chain(num).delay(5).delay("7 days")
assertType<Equals<typeof d, Chain<number, number, never>>>(true)
const handler = task("handler", { input: TaskFailure, output: Schema.Void, run: () => Effect.void })
chain(num).onError(handler)
// @ts-expect-error a handler must accept a TaskFailure
chain(num).onError(num)

// services required by tasks accumulate
class Clock2 extends Context.Service<Clock2, { readonly now: () => number }>()("test/Clock2") {}
const needsClock = task("needsClock", {
  input: Schema.Number,
  output: Schema.Number,
  run: (n) => Clock2.use((c) => Effect.succeed(c.now() + n)),
})
const withR = chain(num).then(needsClock)
assertType<Equals<typeof withR, Chain<number, number, Clock2>>>(true)

// workflow: input of the first step, start typed
const wf = workflow("wf", chain(num).then(num))
wf.start(1)
// @ts-expect-error the input is a number
wf.start("one")
checkout.start({ orderId: "o-1" }, { idempotencyKey: "order-o-1" })
// @ts-expect-error missing orderId
checkout.start({})

// time: a duration option takes a Duration.Input (a bare number is seconds); an instant is a Date
wf.start(1, { delay: 30 })
wf.start(1, { delay: "5 minutes" })
wf.start(1, { delay: Duration.seconds(5) })
wf.start(1, { at: new Date() })
wf.start(1, { at: new Date(), idempotencyKey: "k" })
// @ts-expect-error a Date is an instant: `delay` takes a duration (start at a Date with `at`)
wf.start(1, { delay: new Date() })
// @ts-expect-error `delay` and `at` exclude each other
wf.start(1, { delay: 30, at: new Date() })
// @ts-expect-error `at` takes a Date, not a duration
wf.start(1, { at: 30 })
// @ts-expect-error a Date is not a delay
chain(num).delay(new Date())
// @ts-expect-error a task timeout is a duration, not an instant
task("late", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n), timeout: new Date() })
task("timed", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n), timeout: 30, retry: { initialDelay: 1, maxDelay: "1 minute" } })
