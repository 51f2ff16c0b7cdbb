// Docs that run: every ```ts block in README.md is written to .readme-blocks/block-N.ts and
// executed on this Node (24) from the repository root, so `import … from "taskgraph"` resolves
// through the package's own `exports` (to the sources, under the `taskgraph-source` condition).
// Mark a block that must not run with ```ts no-run.
import { execFile } from "node:child_process"
import { mkdir, readFile, rm, writeFile } from "node:fs/promises"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { beforeAll, describe, expect, it } from "vitest"

const root = fileURLToPath(new URL("..", import.meta.url))
const blocksDir = path.join(root, ".readme-blocks")

interface CodeBlock {
  /** 1-based position among the README's ts blocks */
  readonly n: number
  /** 1-based README line of the opening fence */
  readonly line: number
  readonly info: string
  readonly code: string
}

/** The fenced code blocks whose info string starts with `ts` (or `typescript`). */
function tsBlocks(markdown: string): Array<CodeBlock> {
  const lines = markdown.split(/\r?\n/)
  const blocks: Array<CodeBlock> = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})\s*(.*)$/.exec(lines[i] ?? "")
    if (open === null) continue
    const fence = open[1] as string
    const info = (open[2] ?? "").trim()
    const body: Array<string> = []
    let j = i + 1
    for (; j < lines.length; j++) {
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(lines[j] ?? "")
      if (close !== null && close[1]?.[0] === fence[0] && (close[1]?.length ?? 0) >= fence.length) break
      body.push(lines[j] ?? "")
    }
    const language = info.split(/[\s{,]/)[0]
    if (language === "ts" || language === "typescript") {
      blocks.push({ n: blocks.length + 1, line: i + 1, info, code: `${body.join("\n")}\n` })
    }
    i = j
  }
  return blocks
}

interface RunResult {
  readonly code: number | null
  readonly signal: string | null
  readonly stdout: string
  readonly stderr: string
}

function runBlock(file: string): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, METADATA_SERVER_DETECTION: "none" }
  delete env.DATABASE_URL
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["--conditions=taskgraph-source", file],
      { cwd: root, env, timeout: 115_000, killSignal: "SIGKILL", maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : null
        resolve({ code, signal: error?.signal ?? null, stdout, stderr })
      },
    )
  })
}

const readme = await readFile(path.join(root, "README.md"), "utf8")
const blocks = tsBlocks(readme)
const runnable = blocks.filter((block) => !/\bno-run\b/.test(block.info))

describe("README.md", () => {
  beforeAll(async () => {
    await rm(blocksDir, { recursive: true, force: true })
    await mkdir(blocksDir, { recursive: true })
  })

  it("has ts blocks to run", () => {
    expect(runnable.length, "README has no ts blocks").toBeGreaterThan(0)
  })

  for (const block of runnable) {
    it(`block ${block.n} (README.md line ${block.line}) runs`, { timeout: 120_000 }, async () => {
      const file = path.join(blocksDir, `block-${block.n}.ts`)
      await writeFile(file, block.code)
      const result = await runBlock(file)
      const report = [
        `README.md block ${block.n} (line ${block.line}, .readme-blocks/block-${block.n}.ts)`,
        `exited with ${result.code ?? result.signal}`,
        `--- stderr ---\n${result.stderr}`,
        `--- stdout ---\n${result.stdout}`,
      ].join("\n")
      expect(result.code, report).toBe(0)
    })
  }
})
