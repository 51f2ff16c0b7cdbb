// The Cloud Tasks path with several replicas behind one front, for the reliability suite: the
// real `CloudTasksClient` → the emulator → a front on 127.0.0.1 (what a load balancer is to Cloud
// Run) → the chosen replica's Hono routes, authenticated with the emulator's OIDC tokens → its
// engine → one private PostgreSQL database. Each replica (./support.ts) has its own fault points,
// lease and sweeper; the front decides who takes each delivery, can answer one itself (an
// injected 429/503), lose an answer after the replica gave it (the connection dropped), and
// answers 504 for a replica that does not answer in time (a frozen process). It records every
// answer, and on request the attempt rows recorded for that callback when it answered.
import type { CloudTasksClient } from "@google-cloud/tasks"
import { Hono } from "hono"
import http from "node:http"
import type { AddressInfo } from "node:net"
import { Effect } from "effect"
import { emulatorClient } from "../../adapters/cloud-tasks/Client.ts"
import type { CloudTasksDispatcherConfig, DispatchReport } from "../../adapters/cloud-tasks/CloudTasksDispatcher.ts"
import { type CloudTasksEmulator, startCloudTasksEmulator } from "../../emulators/index.ts"
import { type QueueSpec, syncQueues } from "../../adapters/cloud-tasks/Queues.ts"
import { oidcAuthenticator } from "../../adapters/hono/OidcAuthenticator.ts"
import { taskgraphRoutes } from "../../adapters/hono/routes.ts"
import type { AnyWorkflow } from "../../dsl/index.ts"
import { fastRetries, location, project, serviceAccount } from "../adapters/cloud-tasks/harness.ts"
import { testDatabase, type TestDatabase } from "../support/runtime.ts"
import { type Replica, replica, type ReplicaOptions } from "./support.ts"

/** One delivery reaching the front. */
export interface Delivery {
  readonly run: string
  readonly node: string
  readonly attempt: number
  /** Earlier deliveries of the same callback (run, node, attempt). */
  readonly earlier: number
}

/** What the front answered for one delivery. */
export interface Answer extends Delivery {
  /** The replica that answered, or "front" for an injected answer. */
  readonly by: string
  readonly status: number
  /** The outcome's tag (2xx and 409), or the error of a refusal. */
  readonly outcome: string
  /** With `audit`: attempt rows of this callback's (run, node, attempt) when it was answered. */
  readonly recorded?: number
  /** The answer never reached the emulator: the connection was dropped after it. */
  readonly lost: boolean
}

export interface FrontPolicy {
  /** The replica (by name) that takes a delivery, or a status the front answers itself; default the first replica. */
  route: (delivery: Delivery) => string | number
  /** Drop the connection instead of sending this answer (default never). */
  lose: (delivery: Delivery, status: number) => boolean
  /** A replica that has not answered by then gets a 504 from the front (default 2 s). */
  timeoutMs: number
  /** Record the attempt rows of each answered callback (default false: a query per answer). */
  audit: boolean
}

export interface ClusterReplica extends Replica {
  readonly name: string
  /** Every dispatch report of this replica's dispatcher, in order. */
  readonly reports: Array<DispatchReport>
  /** Errors its routes answered 5xx for. */
  readonly routeErrors: Array<unknown>
}

export interface Cluster {
  readonly emulator: CloudTasksEmulator
  readonly client: CloudTasksClient
  readonly db: TestDatabase
  readonly queuePath: string
  readonly front: FrontPolicy
  readonly answers: Array<Answer>
  /** Starts a replica behind the front (Cloud Tasks dispatcher; no sweeper unless asked). */
  readonly replica: (name: string, options?: Omit<ReplicaOptions, "orm" | "workflows" | "cloudTasks">) => Promise<ClusterReplica>
  /** Closes the replicas, resets the front's policy and answers, empties the database's tables. */
  readonly reset: () => Promise<void>
  readonly close: () => Promise<void>
}

const defaultPolicy = (): FrontPolicy => ({
  route: () => "",
  lose: () => false,
  timeoutMs: 2_000,
  audit: false,
})

/** Headers Node's `Request` must not be given again (hop-by-hop ones, and the length it computes). */
const hopByHop = new Set(["connection", "keep-alive", "transfer-encoding", "host", "content-length"])

export const startCluster = async (options: { readonly workflows: ReadonlyArray<AnyWorkflow>; readonly queues?: ReadonlyArray<QueueSpec> }): Promise<Cluster> => {
  const emulator = await startCloudTasksEmulator()
  const client = emulatorClient(emulator.address, project)
  await Effect.runPromise(syncQueues(client, { project, location, queues: options.queues ?? [{ name: "default", ...fastRetries }] }))
  const db = await testDatabase()
  const replicas = new Map<string, { readonly replica: ClusterReplica; readonly app: Hono }>()
  const front: FrontPolicy = defaultPolicy()
  const answers: Array<Answer> = []
  const seen = new Map<string, number>()

  const recordedFor = async (d: Delivery) =>
    d.run === "" ? 0 : db.count("taskgraph_attempts", "run_id::text = $1 and node_id = $2 and attempt = $3", [d.run, d.node, d.attempt])

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Array<Buffer> = []
    for await (const chunk of req) chunks.push(chunk as Buffer)
    const body = Buffer.concat(chunks)
    let callback: { run?: unknown; node?: unknown; attempt?: unknown } = {}
    try {
      callback = JSON.parse(body.toString("utf8"))
    } catch {
      // not a callback: passed on as it is
    }
    const key = { run: String(callback.run ?? ""), node: String(callback.node ?? ""), attempt: Number(callback.attempt ?? 0) }
    const id = `${key.run}/${key.node}/${key.attempt}`
    const delivery: Delivery = { ...key, earlier: seen.get(id) ?? 0 }
    seen.set(id, delivery.earlier + 1)
    const target = front.route(delivery)
    let status: number
    let text: string
    let by: string
    if (typeof target === "number") {
      by = "front"
      status = target
      text = JSON.stringify({ error: "injected", message: `the front answered ${target}` })
    } else {
      const chosen = replicas.get(target) ?? [...replicas.values()][0]
      if (chosen === undefined) throw new Error("no replica behind the front")
      by = chosen.replica.name
      const headers = new Headers()
      for (const [name, value] of Object.entries(req.headers)) {
        if (value === undefined || hopByHop.has(name)) continue
        for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v)
      }
      const request = new Request(`http://127.0.0.1${req.url ?? "/"}`, { method: req.method ?? "POST", headers, body })
      let timer: NodeJS.Timeout | undefined
      const late = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), front.timeoutMs)
      })
      const response = await Promise.race([Promise.resolve(chosen.app.fetch(request)), late]).finally(() => clearTimeout(timer))
      if (response === undefined) {
        status = 504
        text = JSON.stringify({ error: "gateway_timeout", message: `${by} did not answer within ${front.timeoutMs} ms` })
      } else {
        status = response.status
        text = await response.text()
      }
    }
    let outcome = ""
    try {
      const json = JSON.parse(text) as { outcome?: string; error?: string }
      outcome = json.outcome ?? json.error ?? ""
    } catch {
      outcome = text.slice(0, 100)
    }
    const lost = front.lose(delivery, status)
    answers.push({ ...delivery, by, status, outcome, lost, ...(front.audit ? { recorded: await recordedFor(delivery) } : {}) })
    if (lost) {
      req.socket.destroy()
      return
    }
    res.writeHead(status, { "content-type": "application/json" })
    res.end(text)
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" })
      res.end(JSON.stringify({ error: "front", message: String(error) }))
    })
  })
  const port = await new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)))
  const callbackUrl = `http://127.0.0.1:${port}/taskgraph/callback`
  const authenticate = oidcAuthenticator({ audience: callbackUrl, allowedServiceAccounts: [serviceAccount], keySource: emulator.certs })

  const add = async (name: string, replicaOptions: Omit<ReplicaOptions, "orm" | "workflows" | "cloudTasks"> = {}): Promise<ClusterReplica> => {
    const reports: Array<DispatchReport> = []
    const routeErrors: Array<unknown> = []
    const config: CloudTasksDispatcherConfig = {
      project,
      location,
      defaultQueue: "default",
      callbackUrl,
      oidc: { serviceAccountEmail: serviceAccount, audience: callbackUrl },
      client,
      onReport: (report) => reports.push(report),
    }
    const made = await replica({ ...replicaOptions, orm: db.orm, workflows: options.workflows, cloudTasks: config })
    const self: ClusterReplica = { ...made, name, reports, routeErrors }
    const app = new Hono().route("/taskgraph", taskgraphRoutes(made, { authenticate, onError: (error) => routeErrors.push(error) }))
    replicas.set(name, { replica: self, app })
    return self
  }

  const closeReplicas = async () => {
    const all = [...replicas.values()]
    replicas.clear()
    await Promise.all(all.map((r) => r.replica.close()))
  }

  return {
    emulator,
    client,
    db,
    queuePath: `projects/${project}/locations/${location}/queues/default`,
    front,
    answers,
    replica: add,
    reset: async () => {
      await closeReplicas()
      Object.assign(front, defaultPolicy())
      answers.length = 0
      seen.clear()
      emulator.faults.clear()
      await client.purgeQueue({ name: `projects/${project}/locations/${location}/queues/default` })
      await db.reset()
    },
    close: async () => {
      await emulator.stop() // no more deliveries
      await closeReplicas()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      server.closeAllConnections()
      await client.close()
      await db.close()
    },
  }
}

/** The answers for one node of a run, in order. */
export const answersFor = (answers: ReadonlyArray<Answer>, run: string, node: string) => answers.filter((a) => a.run === run && a.node === node)
