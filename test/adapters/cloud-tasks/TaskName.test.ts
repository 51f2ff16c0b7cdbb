// Task names: deterministic, hashed first, new for every attempt, generation and hop, and
// always a valid Cloud Tasks task id.
import { describe, expect, it } from "vitest"
import { maxTaskIdLength, taskId } from "../../../adapters/cloud-tasks/TaskName.ts"

const run = "0b6c3f5e-8d1a-4c2b-9e7f-1a2b3c4d5e6f"
const key = { run, node: "s1-charge", attempt: 1, generation: 0 }
const validId = /^[A-Za-z0-9_-]{1,500}$/

describe("taskId", () => {
  it("is <12 hex>-<run>-<node>-<attempt>, and the same for the same dispatch", () => {
    const id = taskId(key)
    expect(id).toMatch(new RegExp(`^[0-9a-f]{12}-${run}-s1-charge-1$`))
    expect(taskId({ ...key })).toBe(id)
  })

  it("changes with the attempt, the generation, the node, the run and the hop", () => {
    const ids = [
      taskId(key),
      taskId({ ...key, attempt: 2 }),
      taskId({ ...key, generation: 1 }),
      taskId({ ...key, node: "s2-charge" }),
      taskId({ ...key, run: run.replace("0b6c", "0b6d") }),
      taskId(key, 1_900_000_000_000),
      taskId(key, 1_900_086_400_000),
    ]
    expect(new Set(ids).size).toBe(ids.length)
    // the hash prefixes differ too: names are spread, not sequential
    expect(new Set(ids.map((id) => id.slice(0, 12))).size).toBe(ids.length)
  })

  it("a hop is named after its schedule second", () => {
    expect(taskId(key, 1_900_000_000_100)).toBe(taskId(key, 1_900_000_000_900))
    expect(taskId(key, 1_900_000_001_000)).not.toBe(taskId(key, 1_900_000_000_000))
  })

  it("replaces characters Cloud Tasks does not allow, keeping distinct nodes distinct", () => {
    const a = taskId({ ...key, node: "s2m0-square#3" })
    const b = taskId({ ...key, node: "s2m0-square.3" })
    expect(a).toMatch(validId)
    expect(a).toContain("-s2m0-square_3-1")
    expect(b).toMatch(validId)
    expect(a).not.toBe(b)
  })

  it("stays within 500 characters for the longest node ids", () => {
    const long = taskId({ ...key, node: `${"n".repeat(300)}#${"9".repeat(211)}`, attempt: 123456 })
    expect(long.length).toBeLessThanOrEqual(maxTaskIdLength)
    expect(long).toMatch(validId)
    expect(long.endsWith("-123456")).toBe(true)
  })
})
