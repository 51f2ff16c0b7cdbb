// The dashboard in a real browser: Debian's headless Chromium, driven by playwright-core (no
// browser download), against a runtime on the test PostgreSQL, with the dashboard mounted under
// /taskgraph/ui on a real socket on 127.0.0.1 in local-development mode. The runs list filters
// and counts; the run page of a finished group + map workflow shows every graph node with its
// state (the map's template as done/expected); an iteration shows its shards and rows; a running
// map is followed live; a failed run's Retry button makes it succeed. Every page load is checked
// for script errors and for requests leaving the dashboard's origin. Screenshots go to
// test-results/screenshots/ and their paths are printed.
//
// Skipped, saying so, where no Chromium is installed (CHROMIUM_PATH, default /usr/bin/chromium).
import { serve, type ServerType } from "@hono/node-server"
import { defineEntity, p } from "@mikro-orm/core"
import { defineConfig, MikroORM } from "@mikro-orm/postgresql"
import { Data, Effect, Schema } from "effect"
import { Hono } from "hono"
import { existsSync } from "node:fs"
import { copyFile, mkdir } from "node:fs/promises"
import type { AddressInfo } from "node:net"
import path from "node:path"
import { fileURLToPath } from "node:url"
import { type Browser, chromium, type Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { dashboardRoutes } from "../../../adapters/hono/Dashboard.ts"
import { makePostgresRunHistory } from "../../../adapters/postgres/History.ts"
import { chain, IterationSummary, task, TaskFailure, workflow } from "../../../dsl/index.ts"
import { RunHistory } from "../../../engine/History.ts"
import { createRuntime, type Runtime } from "../../../src/Runtime.ts"
import { until } from "../../reliability/support.ts"
import { gate, type TestDatabase, testDatabase } from "../../support/runtime.ts"

const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
const haveChromium = existsSync(executablePath)
if (!haveChromium) {
  // .ci/run installs it: in CI a browser suite skipped would pass without having run
  if (process.env.CI === "true") throw new Error(`Dashboard.browser.test.ts: no Chromium at ${executablePath} in CI (.ci/run installs Debian's chromium)`)
  console.warn(`Dashboard.browser.test.ts: SKIPPED, no Chromium at ${executablePath} (apt-get install chromium, or set CHROMIUM_PATH)`)
}

const root = fileURLToPath(new URL("../../..", import.meta.url))
const shots = path.join(root, "test-results", "screenshots")

// a group then a map whose template has two steps
const split = task("uiSplit", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n) })
const increment = task("uiIncrement", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n + 1) })
// past the 2 KiB the page asks for: cut, and whole on request
const label = task("uiLabel", { input: Schema.Number, output: Schema.String, run: (n) => Effect.succeed(`label ${n} `.repeat(400)) })
const range = task("uiRange", {
  input: Schema.Tuple([Schema.Number, Schema.String]),
  output: Schema.Array(Schema.Number),
  run: ([n]) => Effect.succeed(Array.from({ length: n }, (_, i) => i)),
})
const square = task("uiSquare", { input: Schema.Number, output: Schema.Number, run: (n) => Effect.succeed(n * n) })
const describeIt = task("uiDescribe", { input: Schema.Number, output: Schema.String, run: (n) => Effect.succeed(`square ${n}`) })
const report = task("uiReport", { input: Schema.Array(Schema.String), output: Schema.Number, run: (xs) => Effect.succeed(xs.length) })
const fanOut = workflow("ui-fan-out", chain(split).group([increment, label]).then(range).map(chain(square).then(describeIt)).then(report))

// fails for good while `declining` is set, so the test decides when a retry can succeed
let declining = true
class Declined extends Data.TaggedError("Declined")<{ readonly message: string }> {}
const prepare = task("uiPrepare", { input: Schema.String, output: Schema.String, run: (s) => Effect.succeed(s.toUpperCase()) })
const charge = task("uiCharge", {
  input: Schema.String,
  output: Schema.String,
  retry: { maxAttempts: 1 },
  run: (s) => (declining ? Effect.fail(new Declined({ message: `card for ${s} declined` })) : Effect.succeed(`charged ${s}`)),
})
const receipt = task("uiReceipt", { input: Schema.String, output: Schema.String, run: (s) => Effect.succeed(`receipt: ${s}`) })
const checkout = workflow("ui-checkout", chain(prepare).then(charge).then(receipt))

// a checkout whose map of items waits, for two of them, for the test: a run the page must follow
// live, run by a worker (its screenshot is the README's: UPDATE_DOCS_SCREENSHOT=1 writes it)
const held = gate()
const Order = Schema.Struct({ orderId: Schema.String, items: Schema.Array(Schema.String) })
const reserveStock = task("reserveStock", { input: Order, output: Order, run: (o) => Effect.succeed(o) })
const chargeCard = task("chargeCard", { input: Order, output: Order, run: (o) => Effect.succeed(o) })
const emailReceipt = task("emailReceipt", { input: Order, output: Schema.String, run: (o) => Effect.succeed(`sent ${o.orderId}`) })
const notifyWarehouse = task("notifyWarehouse", { input: Order, output: Schema.Array(Schema.String), run: (o) => Effect.succeed(o.items) })
const pickItems = task("pickItems", { input: Schema.Tuple([Schema.String, Schema.Array(Schema.String)]), output: Schema.Array(Schema.String), run: ([, items]) => Effect.succeed(items) })
const packItem = task("packItem", {
  input: Schema.String,
  output: Schema.String,
  run: (sku) => (sku === "sku-3" || sku === "sku-4" ? Effect.as(Effect.promise(() => held.promise), `packed ${sku}`) : Effect.succeed(`packed ${sku}`)),
})
const printLabel = task("printLabel", { input: Schema.String, output: Schema.String, run: (s) => Effect.succeed(`label for ${s}`) })
const ship = task("ship", { input: Schema.Array(Schema.String), output: Schema.Number, run: (labels) => Effect.succeed(labels.length) })
const refund = task("refund", { input: TaskFailure, output: Schema.Boolean, run: () => Effect.succeed(true) })
const live = workflow(
  "checkout",
  chain(reserveStock).then(chargeCard).group([emailReceipt, notifyWarehouse]).then(pickItems).map(chain(packItem).then(printLabel)).then(ship).onError(refund),
)
const docsScreenshot = path.join(root, "docs", "dashboard.png")

// an iteration over 30 rows in 3 shards: its node shows shards and rows done
const Item = defineEntity({ name: "UiItem", tableName: "ui_items", properties: { id: p.integer().primary() } })
const noParams = task("uiParams", { input: Schema.Null, output: Schema.Null, run: () => Effect.succeed(null) })
const visit = task("uiVisit", { input: Schema.Array(Schema.Any), output: Schema.Void, run: () => Effect.void })
const total = task("uiTotal", { input: IterationSummary, output: Schema.Number, run: (summary) => Effect.succeed(summary.rows) })
const sweep = workflow("ui-sweep", chain(noParams).iterate("ui-items", { entity: Item, shards: 3, batchSize: 4, eachBatch: visit, finalize: total }))

let db: TestDatabase
let orm: MikroORM
let tg: Runtime
let worker: Runtime
let server: ServerType
let browser: Browser
let ui: string
let origin: string
const ids = {} as Record<"fanOut" | "checkout" | "live" | "sweep", string>

describe.skipIf(!haveChromium)("the dashboard in headless Chromium", () => {
  beforeAll(async () => {
    db = await testDatabase()
    await db.sql("create table ui_items (id int primary key)")
    await db.sql("insert into ui_items select g from generate_series(1, 30) g")
    orm = await MikroORM.init(defineConfig({ clientUrl: db.url, entities: [Item], pool: { min: 0, max: 10 }, debug: false }))
    tg = await createRuntime({ orm, workflows: [fanOut, checkout, sweep], eager: true })
    const history = makePostgresRunHistory(db.orm)
    const runtime = { runPromise: <A, E>(e: Effect.Effect<A, E, any>) => tg.runPromise(Effect.provideService(e, RunHistory, history)) }
    const app = new Hono().route("/taskgraph/ui", dashboardRoutes(runtime, { localDevelopment: true }))
    const port = await new Promise<number>((resolve) => {
      server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => resolve(info.port))
    })
    origin = `http://127.0.0.1:${port}`
    ui = `${origin}/taskgraph/ui`
    const fan = await tg.start(fanOut, 2)
    ids.fanOut = fan.id
    expect(await fan.result()).toBe(3)
    ids.sweep = (await tg.start(sweep, null)).id
    ids.checkout = (await tg.start(checkout, "order-7")).id
    // eager mode runs it inline: failed for good once its one try failed
    await until(async () => (await tg.status(ids.checkout))?.status === "failed", "the checkout run to fail", 20_000)
    expect((await tg.status(ids.checkout))?.status).toBe("failed")
    await mkdir(shots, { recursive: true })
    browser = await chromium.launch({
      executablePath,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    })
  }, 120_000)

  afterAll(async () => {
    held.open()
    await browser?.close()
    await worker?.close()
    await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())))
    await tg?.close()
    await orm?.close()
    await db?.close()
  })

  /** A page that records script errors and any request leaving the dashboard's origin. */
  const open = async (url: string) => {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } })
    const problems: Array<string> = []
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`))
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console: ${message.text()}`)
    })
    page.on("request", (request) => {
      if (!request.url().startsWith(`${origin}/`)) problems.push(`request outside the origin: ${request.url()}`)
    })
    await page.goto(url)
    return { page, problems }
  }

  const shoot = async (page: Page, name: string) => {
    const file = path.join(shots, name)
    await page.screenshot({ path: file, fullPage: true })
    console.log(`screenshot: ${file}`)
    return file
  }

  it("lists the runs with live counts by status, and filters them", async () => {
    const { page, problems } = await open(`${ui}/`)
    await page.locator(`tr[data-run="${ids.fanOut}"][data-status="succeeded"]`).waitFor()
    await page.locator(`tr[data-run="${ids.checkout}"][data-status="failed"]`).waitFor()
    // the sweep ends last (a loaded machine may still be running it): the counts below need it done
    await page.locator(`tr[data-run="${ids.sweep}"][data-status="succeeded"]`).waitFor({ timeout: 20_000 })
    expect(await page.locator('[data-count="total"]').textContent()).toBe("3")
    expect(await page.locator('[data-count="failed"]').textContent()).toBe("1")
    expect(await page.locator(`tr[data-run="${ids.checkout}"] .error-cell`).textContent()).toContain("card for ORDER-7 declined")
    await shoot(page, "runs-list.png")
    // the workflow filter offers the names seen, and narrows to one
    expect(await page.locator("#workflows-seen option").evaluateAll((options) => options.map((o) => o.getAttribute("value")))).toEqual(["ui-checkout", "ui-fan-out", "ui-sweep"])
    await page.fill("#f-workflow", "ui-sweep")
    await page.click("button[type=submit]")
    await expect.poll(async () => (await page.locator("tr[data-run]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-run")))).join()).toBe(ids.sweep)
    await page.fill("#f-workflow", "")
    // a filter narrows the list and is kept in the address
    await page.fill("#f-error", "DECLINED")
    await page.click("button[type=submit]")
    // (the list shows one row already, the workflow filter's: wait for the error filter's one)
    await expect.poll(async () => (await page.locator("tr[data-run]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-run")))).join()).toBe(ids.checkout)
    expect(new URL(page.url()).searchParams.get("error")).toBe("DECLINED")
    // the counts follow the filter, and a count is a filter too
    expect(await page.locator('[data-count="total"]').textContent()).toBe("1")
    await page.click("text=Clear")
    await page.locator('[data-count="total"]:text-is("3")').waitFor()
    await page.click(".count.st-succeeded")
    await expect.poll(async () => (await page.locator("tr[data-run]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-run")))).join()).toBe(`${ids.sweep},${ids.fanOut}`)
    expect(problems).toEqual([])
    await page.close()
  })

  it("draws every node of a finished group and map run with its state, the map's template as done/expected", async () => {
    const { page, problems } = await open(`${ui}/runs/${ids.fanOut}`)
    const graph = (await tg.status(ids.fanOut))!.graph
    for (const node of graph.nodes) {
      await page.locator(`g.node[data-node="${node.id}"][data-state="succeeded"]`).waitFor({ timeout: 15_000 })
    }
    expect(await page.locator("g.node").count()).toBe(graph.nodes.length)
    // three elements: each template node shows 3/3, the map its elements, and no instance is drawn on its own
    const template = graph.nodes.filter((n) => n.scope !== undefined)
    expect(template).toHaveLength(2)
    for (const node of template) expect(await page.locator(`g.node[data-node="${node.id}"]`).getAttribute("data-line")).toBe("3/3 done")
    const map = graph.nodes.find((n) => n.kind === "map")!
    expect(await page.locator(`g.node[data-node="${map.id}"]`).getAttribute("data-line")).toBe("3/3 elements")
    expect(await page.locator("g.cluster").count()).toBe(1)
    // the timeline has a lane for every node row that ran
    const rows = (await tg.status(ids.fanOut))!.nodes.filter((n) => n.state === "succeeded")
    await expect.poll(() => page.locator(".lane").count()).toBe(rows.length)
    // a template's details list its instances; one instance shows its input and output
    const squareNode = template.find((n) => n.kind === "task" && n.task === "uiSquare")!
    await page.click(`g.node[data-node="${squareNode.id}"]`)
    await page.locator(`tr[data-row="${squareNode.id}#2"]`).click()
    const detail = page.locator(`.row-details[data-row="${squareNode.id}#2"]`)
    await detail.waitFor()
    expect(await detail.locator("pre.value").allTextContents()).toEqual(["2", "4"])
    await shoot(page, "run-fan-out.png")
    // a value past the page's bound is cut until asked for whole
    const labelNode = graph.nodes.find((n) => n.kind === "task" && n.task === "uiLabel")!
    await page.click(`g.node[data-node="${labelNode.id}"]`)
    const output = page.locator(`.row-details[data-row="${labelNode.id}"] pre.value`).nth(1)
    await page.locator(".value-note", { hasText: "cut; 3202 bytes in all" }).waitFor()
    expect((await output.textContent())!.length).toBeLessThan(2100)
    await page.click("text=Show the full value")
    await page.locator(".value-note", { hasText: "3202 bytes, whole" }).waitFor()
    expect(JSON.parse((await output.textContent())!)).toBe("label 2 ".repeat(400))
    expect(problems).toEqual([])
    await page.close()
  })

  it("shows an iteration's shards and rows on its node", async () => {
    const { page, problems } = await open(`${ui}/runs/${ids.sweep}`)
    const graph = (await tg.status(ids.sweep))!.graph
    for (const node of graph.nodes) await page.locator(`g.node[data-node="${node.id}"][data-state="succeeded"]`).waitFor({ timeout: 15_000 })
    const iterate = graph.nodes.find((n) => n.kind === "iterate")!
    const shard = graph.nodes.find((n) => n.kind === "shard")!
    expect(await page.locator(`g.node[data-node="${iterate.id}"]`).getAttribute("data-line")).toMatch(/^3\/3 shards · 30\/\d+ rows$/)
    expect(await page.locator(`g.node[data-node="${shard.id}"]`).getAttribute("data-line")).toBe("3/3 done")
    expect(await page.locator(`g.cluster[data-cluster="${iterate.id}"]`).count()).toBe(1)
    await page.click(`g.node[data-node="${shard.id}"]`)
    await page.locator(`tr[data-row="${shard.id}#0"]`).click()
    // the shard's rows walked out of its estimate, and the pages it read
    await page.locator(`.row-details[data-row="${shard.id}#0"] .field-value`).filter({ hasText: /^\d+\/\d+ \(\d+ pages\)$/ }).waitFor()
    await shoot(page, "run-iteration.png")
    expect(problems).toEqual([])
    await page.close()
  })

  it("follows a running run live: a map part done, then done, without a reload", async () => {
    worker = await createRuntime({ orm: db.orm, workflows: [live] })
    ids.live = (await worker.start(live, { orderId: "A-1042", items: ["sku-1", "sku-2", "sku-3", "sku-4", "sku-5"] })).id
    const { page, problems } = await open(`${ui}/runs/${ids.live}`)
    const graph = (await tg.status(ids.live))!.graph
    const map = graph.nodes.find((n) => n.kind === "map")!
    const [pack, label] = graph.nodes.filter((n) => n.scope === map.id)
    const last = graph.nodes.find((n) => n.kind === "task" && n.task === "ship")!
    await page.locator(`g.node[data-node="${map.id}"][data-line="3/5 elements"]`).waitFor({ timeout: 20_000 })
    await page.locator(`g.node[data-node="${pack!.id}"][data-state="running"][data-line="3/5 running"]`).waitFor()
    await page.locator(`g.node[data-node="${label!.id}"][data-line="3/5 waiting"]`).waitFor()
    await page.locator('body[data-status="running"]').waitFor({ state: "attached" })
    expect(await page.locator(`g.node[data-node="${last.id}"]`).getAttribute("data-state")).toMatch(/^(none|waiting)$/)
    expect(await page.locator("#revoke").isDisabled()).toBe(false)
    expect(await page.locator("#retry").isDisabled()).toBe(true)
    await page.click(`g.node[data-node="${pack!.id}"]`)
    await page.locator(`tr[data-row="${pack!.id}#1"]`).click()
    await page.locator(`.row-details[data-row="${pack!.id}#1"]`).waitFor()
    const file = await shoot(page, "run-live.png")
    if (process.env.UPDATE_DOCS_SCREENSHOT === "1") {
      await copyFile(file, docsScreenshot)
      console.log(`screenshot: ${docsScreenshot} (the README's)`)
    }
    held.open()
    await page.locator('body[data-status="succeeded"]').waitFor({ state: "attached", timeout: 20_000 })
    await page.locator(`g.node[data-node="${map.id}"][data-line="5/5 elements"]`).waitFor()
    await page.locator(`g.node[data-node="${last.id}"][data-state="succeeded"]`).waitFor()
    // the onError handler stayed dormant: its nodes were cancelled when the run succeeded
    for (const handler of graph.nodes.filter((n) => n.role === "handler")) {
      expect(await page.locator(`g.node[data-node="${handler.id}"]`).getAttribute("data-state")).toBe("cancelled")
    }
    await shoot(page, "run-live-done.png")
    expect(problems).toEqual([])
    await page.close()
  })

  it("shows a failed run's failed node and error; its Retry button makes it succeed", async () => {
    const { page, problems } = await open(`${ui}/runs/${ids.checkout}`)
    await page.locator('body[data-status="failed"]').waitFor({ state: "attached" })
    const graph = (await tg.status(ids.checkout))!.graph
    const [first, failing, last] = graph.nodes
    await page.locator(`g.node[data-node="${first!.id}"][data-state="succeeded"]`).waitFor()
    await page.locator(`g.node[data-node="${failing!.id}"][data-state="failed"]`).waitFor()
    await page.locator(`g.node[data-node="${last!.id}"][data-state="cancelled"]`).waitFor()
    expect(await page.locator(".run-head .error-block").textContent()).toContain("card for ORDER-7 declined")
    expect(await page.locator("#revoke").isDisabled()).toBe(true)
    await page.click(`g.node[data-node="${failing!.id}"]`)
    await page.locator(".row-details .error-block").waitFor()
    await shoot(page, "run-failed.png")

    declining = false
    await page.click("#retry")
    await page.locator('body[data-status="succeeded"]').waitFor({ state: "attached", timeout: 20_000 })
    for (const node of graph.nodes) await page.locator(`g.node[data-node="${node.id}"][data-state="succeeded"]`).waitFor()
    // the failed try is kept beside the one that succeeded
    await page.locator('.row-details h4:text-is("Tries (2)")').waitFor()
    expect(await page.locator("#retry").isDisabled()).toBe(true)
    await shoot(page, "run-retried.png")
    expect(await tg.status(ids.checkout)).toMatchObject({ status: "succeeded" })
    expect(problems).toEqual([])
    await page.close()
  })
})
