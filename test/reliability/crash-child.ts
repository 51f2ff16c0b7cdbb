// A worker process for test/reliability/Crashes.test.ts, killed by its own fault point. Arguments:
// a database URL and the lease in seconds; TASKGRAPH_FAULTS names the point (`…=crash*1`), read
// by the engine as in any process. It starts one run of `crashWorkflow` (printing `run <id>` once
// start() returns) and prints `body <task> <input>` as each body ends, before the step commits: a
// pipe write is synchronous, so a line is out before the process can die.
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { createRuntime } from "../../src/Runtime.ts"
import { crashWorkflow } from "./crash-workflow.ts"

const [url, lease] = process.argv.slice(2)
if (url === undefined || lease === undefined) {
  process.stderr.write("usage: crash-child.ts <database url> <lease seconds>\n")
  process.exit(2)
}
const say = (line: string) => process.stdout.write(`${line}\n`)
const wf = crashWorkflow((task, n) => say(`body ${task} ${n}`))
const orm = await MikroORM.init(defineConfig({ clientUrl: url, entities: [], discovery: { warnWhenNoEntities: false }, debug: false }))
const tg = await createRuntime({ orm, workflows: [wf], worker: { pollInterval: 0.02 }, lease: Number(lease) })
const run = await tg.start(wf, 1)
say(`run ${run.id}`)
