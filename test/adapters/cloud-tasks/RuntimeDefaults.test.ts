// cloudTasksRuntime's defaults, through the real CloudTasksClient against the emulator: queues
// declared with `shards` in `syncOnStart.queues` are the dispatcher's shards (tasks land on every
// shard, none on a queue that does not exist), and its commits send no NOTIFY (nothing in a Cloud
// Tasks deployment listens), unless the store's options ask for one.
import { Effect, Schema } from "effect"
import pg from "pg"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { emulatorClient } from "../../../adapters/cloud-tasks/Client.ts"
import { defaultNotifyChannel } from "../../../adapters/postgres/PostgresStore.ts"
import { chain, task, workflow } from "../../../dsl/index.ts"
import { type CloudTasksEmulator, startCloudTasksEmulator } from "../../../emulators/index.ts"
import { cloudTasksRuntime } from "../../../src/CloudTasksRuntime.ts"
import { testDatabase, type TestDatabase } from "../../support/runtime.ts"
import { serveLater } from "../../support/serve.ts"
import { location, project, serviceAccount } from "./harness.ts"

const step = task("rdStep", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n) })
const one = workflow("rd-one", chain(step))

let emulator: CloudTasksEmulator
let db: TestDatabase
beforeAll(async () => {
  emulator = await startCloudTasksEmulator()
  db = await testDatabase()
})
afterAll(async () => {
  await emulator?.stop()
  await db?.close()
})

describe("cloudTasksRuntime", () => {
  it("dispatches over the shards syncOnStart.queues declares, and sends no NOTIFY", async () => {
    // the callbacks are refused (503: no routes), so the tasks stay in their queues to be counted
    const server = await serveLater()
    const client = emulatorClient(emulator.address, project)
    const listener = new pg.Client({ connectionString: db.url })
    await listener.connect()
    const notices: Array<string> = []
    listener.on("notification", (n) => notices.push(n.channel))
    await listener.query(`listen ${defaultNotifyChannel}`)
    const callbackUrl = `http://127.0.0.1:${server.port}/taskgraph/callback`
    const tg = await cloudTasksRuntime({
      orm: db.orm,
      workflows: [one],
      sweeper: false,
      cloudTasks: { project, location, defaultQueue: "sharded", callbackUrl, oidc: { serviceAccountEmail: serviceAccount, audience: callbackUrl }, client },
      syncOnStart: { queues: [{ name: "sharded", shards: 3, minBackoff: 30, maxBackoff: 60 }] },
    })
    try {
      await tg.startMany(one, Array.from({ length: 60 }, (_, i) => i))
      const perQueue: Record<string, number> = {}
      for (const queue of ["sharded", "sharded-1", "sharded-2"]) {
        const [tasks] = await client.listTasks({ parent: client.queuePath(project, location, queue) })
        perQueue[queue] = tasks.length
      }
      expect(Object.values(perQueue).reduce((a, b) => a + b, 0), JSON.stringify(perQueue)).toBe(60)
      for (const count of Object.values(perQueue)) expect(count).toBeGreaterThan(0)
      await new Promise((resolve) => setTimeout(resolve, 200))
      expect(notices).toEqual([])
    } finally {
      await tg.close()
      await listener.end()
      await client.close()
      await server.close()
    }
  })
})
