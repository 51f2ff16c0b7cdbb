/**
 * Fleet: a fixed number of slots, each holding one child process (./child.ts) of one role, and
 * what the soak does to them: SIGKILL one by its pid, start a new process in the slot again, stop
 * them all. A slot's process counts as live from its `soak:ready` line until it is killed or
 * exits. A process that exits without being killed or asked to stop (a crash) is recorded as an
 * unexpected exit, with the last lines of its log, and its slot is started again: the soak goes
 * on, and the report says so.
 *
 * Every process's stdout and stderr go to `<logDir>/<fleet>-<slot>.log` (one file per slot, a
 * header line per process). Only this module's own children are ever signalled, by pid.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { createWriteStream, type WriteStream } from "node:fs"
import path from "node:path"
import type { ChildConfig } from "./child.ts"

export interface Member {
  readonly slot: number
  readonly pid: number
  readonly child: ChildProcess
  /** The port it serves on (0: none). */
  port: number
  state: "starting" | "ready" | "killed" | "exited" | "stopping"
  readonly startedAt: number
  readyAt?: number
}

export interface Kill {
  readonly fleet: string
  readonly slot: number
  readonly pid: number
  /** When SIGKILL was sent (epoch ms). */
  readonly at: number
}

export interface UnexpectedExit {
  readonly fleet: string
  readonly slot: number
  readonly pid: number
  readonly at: number
  readonly code: number | null
  readonly signal: string | null
  readonly tail: ReadonlyArray<string>
}

export interface FleetOptions {
  readonly name: string
  readonly size: number
  readonly config: (slot: number) => ChildConfig
  readonly logDir: string
  /** How long a process may take to print its ready line (default 90 s: two cores, many starting at once). */
  readonly readyTimeoutMs?: number
  /** `TASKGRAPH_FAULTS` for the processes (engine/Faults.ts): a `crash` there is a SIGKILL of their own. */
  readonly taskgraphFaults?: string
}

const childScript = path.join(import.meta.dirname, "child.ts")

export class Fleet {
  readonly name: string
  readonly kills: Array<Kill> = []
  /** Processes that SIGKILLed themselves at a fault point (`taskgraphFaults`); also in `kills`, at the moment the exit was seen. */
  readonly faultCrashes: Array<Kill> = []
  readonly unexpectedExits: Array<UnexpectedExit> = []
  /** Processes started, the first of each slot included. */
  started = 0
  readonly #options: FleetOptions
  readonly #members = new Map<number, Member>()
  readonly #logs = new Map<number, WriteStream>()
  readonly #tails = new Map<number, Array<string>>()
  #stopping = false

  constructor(options: FleetOptions) {
    this.name = options.name
    this.#options = options
  }

  /** Starts every slot and waits for each to be ready. */
  async start(): Promise<void> {
    await Promise.all(Array.from({ length: this.#options.size }, (_, slot) => this.respawn(slot)))
  }

  /** The live processes. */
  live(): Array<Member> {
    return [...this.#members.values()].filter((m) => m.state === "ready")
  }

  /** SIGKILLs a live process by its pid; its slot stays empty until `respawn`. */
  kill(member: Member): Kill {
    const kill: Kill = { fleet: this.name, slot: member.slot, pid: member.pid, at: Date.now() }
    member.state = "killed"
    process.kill(member.pid, "SIGKILL")
    this.kills.push(kill)
    return kill
  }

  /** Starts a new process in `slot` and waits until it is ready (rejects past the ready timeout, the process killed). */
  respawn(slot: number): Promise<Member> {
    if (this.#stopping) return Promise.reject(new Error(`${this.name}[${slot}]: the fleet is stopping`))
    const log = this.#log(slot)
    const child = spawn(process.execPath, ["--conditions=taskgraph-source", childScript], {
      cwd: path.resolve(import.meta.dirname, "../.."),
      env: {
        ...process.env,
        METADATA_SERVER_DETECTION: "none",
        SOAK_CHILD: JSON.stringify(this.#options.config(slot)),
        TASKGRAPH_FAULTS: this.#options.taskgraphFaults ?? "",
      },
      stdio: ["pipe", "pipe", "pipe"],
    })
    if (child.pid === undefined) return Promise.reject(new Error(`${this.name}[${slot}]: the process did not start`))
    const member: Member = { slot, pid: child.pid, child, port: 0, state: "starting", startedAt: Date.now() }
    this.#members.set(slot, member)
    this.started++
    log.write(`--- ${new Date().toISOString()} pid ${child.pid} started\n`)
    const tail = this.#tails.get(slot) ?? []
    this.#tails.set(slot, tail)
    const remember = (text: string) => {
      log.write(text)
      for (const line of text.split("\n")) {
        if (line.trim() === "") continue
        tail.push(line)
        if (tail.length > 30) tail.shift()
      }
    }
    child.stderr!.setEncoding("utf8").on("data", remember)
    child.stdin!.on("error", () => undefined) // a killed child's pipe
    return new Promise<Member>((resolve, reject) => {
      let buffered = ""
      const timer = setTimeout(() => {
        if (member.state !== "starting") return
        member.state = "killed"
        process.kill(member.pid, "SIGKILL")
        reject(new Error(`${this.name}[${slot}]: pid ${member.pid} not ready within ${this.#options.readyTimeoutMs ?? 90_000} ms\n${tail.join("\n")}`))
      }, this.#options.readyTimeoutMs ?? 90_000)
      child.stdout!.setEncoding("utf8").on("data", (text: string) => {
        remember(text)
        if (member.state !== "starting") return
        buffered += text
        const ready = /soak:ready (\d+) (\d+)/.exec(buffered)
        if (ready !== null) {
          clearTimeout(timer)
          member.port = Number(ready[2])
          member.state = "ready"
          member.readyAt = Date.now()
          resolve(member)
        }
      })
      child.once("exit", (code, signal) => {
        clearTimeout(timer)
        log.write(`--- ${new Date().toISOString()} pid ${child.pid} exited (${signal ?? code})\n`)
        const was = member.state
        if (was === "ready" && signal === "SIGKILL" && (this.#options.taskgraphFaults ?? "") !== "") {
          // a fault point's crash: the soak's doing, like a kill
          member.state = "killed"
          const crash: Kill = { fleet: this.name, slot, pid: member.pid, at: Date.now() }
          this.faultCrashes.push(crash)
          this.kills.push(crash)
          if (!this.#stopping) setTimeout(() => void this.respawn(slot).catch(() => undefined), 500)
        } else if (was !== "killed" && was !== "stopping") {
          member.state = "exited"
          this.unexpectedExits.push({ fleet: this.name, slot, pid: member.pid, at: Date.now(), code, signal, tail: [...tail] })
          if (was === "starting") reject(new Error(`${this.name}[${slot}]: pid ${member.pid} exited before it was ready (${signal ?? code})\n${tail.join("\n")}`))
          // a crash is not the soak's doing: the slot is filled again, and the report says so
          if (!this.#stopping) setTimeout(() => void this.respawn(slot).catch(() => undefined), 1000)
        }
      })
    })
  }

  /** Asks every process to close (its stdin ends), SIGKILLs what is left after `graceMs`, and waits for all. */
  async stop(graceMs = 15_000): Promise<void> {
    this.#stopping = true
    const members = [...this.#members.values()].filter((m) => m.child.exitCode === null && m.child.signalCode === null)
    await Promise.all(members.map(async (m) => {
      const exited = new Promise<void>((resolve) => m.child.once("exit", () => resolve()))
      if (m.state === "starting" || m.state === "ready") m.state = "stopping"
      m.child.stdin!.end()
      const timer = setTimeout(() => {
        if (m.child.exitCode === null && m.child.signalCode === null) process.kill(m.pid, "SIGKILL")
      }, graceMs)
      await exited
      clearTimeout(timer)
    }))
    await Promise.all([...this.#logs.values()].map((log) => new Promise<void>((resolve) => log.end(() => resolve()))))
    this.#logs.clear()
  }

  #log(slot: number): WriteStream {
    let log = this.#logs.get(slot)
    if (log === undefined) {
      log = createWriteStream(path.join(this.#options.logDir, `${this.name}-${slot}.log`), { flags: "a" })
      this.#logs.set(slot, log)
    }
    return log
  }
}
