// The workflow of the child-process crash tests: two steps whose bodies tell `seen` (the child
// prints it, the test counts it). The child (./crash-child.ts) and the test each build it with
// their own `seen`: tasks are looked up by name, and a run keeps the graph it started with.
import { Effect, Schema } from "effect"
import { chain, compile, task, workflow } from "../../dsl/index.ts"

export const crashWorkflow = (seen: (task: string, n: number) => void) => {
  const body = (name: string, f: (n: number) => number) =>
    task(name, {
      input: Schema.Number,
      output: Schema.Number,
      run: (n: number) =>
        Effect.sync(() => {
          seen(name, n)
          return f(n)
        }),
    })
  const first = body("crashFirst", (n) => n + 1)
  const second = body("crashSecond", (n) => n * 10)
  return workflow("crashWf", chain(first).then(second))
}

/** The node ids of the two steps, from the compiled graph. */
export const crashNodes = (() => {
  const nodes = compile(crashWorkflow(() => undefined)).nodes
  const id = (name: string) => nodes.find((n) => n.kind === "task" && n.task === name)!.id
  return { first: id("crashFirst"), second: id("crashSecond") }
})()
