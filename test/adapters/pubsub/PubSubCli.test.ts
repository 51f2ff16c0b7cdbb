// `taskgraph pubsub sync` end to end: the CLI in a child process, a TypeScript configuration with
// the application's topics and subscribers, the real PubSub client against the emulator.
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import type { PubSub } from "@google-cloud/pubsub"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { emulatorPubSubClient } from "../../../adapters/pubsub/Client.ts"
import { type PubSubEmulator, startPubSubEmulator } from "../../../emulators/index.ts"

const cli = fileURLToPath(new URL("../../../src/bin.ts", import.meta.url))
const config = fileURLToPath(new URL("../../fixtures/pubsub.config.ts", import.meta.url))
const project = "taskgraph-cli"

let emulator: PubSubEmulator
let client: PubSub
beforeAll(async () => {
  emulator = await startPubSubEmulator()
  client = emulatorPubSubClient(emulator.address, project)
})
afterAll(async () => {
  await client?.close()
  await emulator?.stop()
})

const runCli = (args: ReadonlyArray<string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env, PUBSUB_EMULATOR_HOST: "", PUBSUB_PROJECT: project } }, (error, stdout, stderr) =>
      resolve({ code: error === null ? 0 : (error.code as number), stdout, stderr }))
  })

describe("taskgraph pubsub sync", () => {
  it("dry run, apply, then nothing to do", async () => {
    const args = ["pubsub", "sync", "--config", config, "--emulator", emulator.address]
    const dry = await runCli([...args, "--dry-run"])
    expect(dry).toMatchObject({ code: 0, stderr: "" })
    expect(dry.stdout).toContain(`+ topic projects/${project}/topics/cli--events: would create`)
    expect(dry.stdout).toContain(`+ subscription projects/${project}/subscriptions/cli--events-log: would create`)
    expect((await client.getTopics())[0]).toEqual([])

    const applied = await runCli(args)
    expect(applied.code).toBe(0)
    expect(applied.stdout).toContain("3 change(s) applied")
    const [meta] = await client.subscription("cli--events-log").getMetadata()
    expect(meta.deadLetterPolicy?.deadLetterTopic).toBe(`projects/${project}/topics/cli--events-log--dead`)

    const again = await runCli(args)
    expect(again.stdout.trim().endsWith("no changes")).toBe(true)
  })
})
