// The taskgraph dashboard in the browser: plain JavaScript, no framework, no outside request.
// The HTML shell (adapters/hono/Dashboard.ts) names the page in its body's data attributes:
// `runs` (the list: filters, live counts, "more" paging) or `run` (one run: its graph as the
// server laid it out, drawn as SVG and coloured by state; node details; the timeline; actions).
// Both refresh on a timer, skipping while the tab is hidden. Text from runs is only ever set as
// text (never parsed as HTML), and every request goes to this origin.

const body = document.body
const base = body.dataset.base ?? ""
const apiBase = `${base}/api`
const pollMs = Number(body.dataset.poll) || 1000
const appTitle = body.dataset.title || "taskgraph"

const runStatuses = ["running", "failing", "parked", "succeeded", "failed", "revoked"]
const finalStatuses = new Set(["succeeded", "failed", "revoked"])
// which state a template shows when its instances differ: the one that most needs a look first
const statePriority = ["failed", "parked", "running", "dispatched", "ready", "waiting", "revoked", "cancelled", "succeeded"]

// --- small helpers ----------------------------------------------------------------------------

/** An HTML element: attributes (on* as listeners, `class`, data-*), then children (text or nodes). */
const h = (tag, attrs = {}, ...children) => {
  const el = document.createElement(tag)
  setAttrs(el, attrs)
  append(el, children)
  return el
}

const svgNs = "http://www.w3.org/2000/svg"
/** An SVG element, as `h`. */
const s = (tag, attrs = {}, ...children) => {
  const el = document.createElementNS(svgNs, tag)
  setAttrs(el, attrs)
  append(el, children)
  return el
}

const setAttrs = (el, attrs) => {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value)
    else el.setAttribute(key, value === true ? "" : String(value))
  }
}

const append = (el, children) => {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue
    el.append(child instanceof Node ? child : document.createTextNode(String(child)))
  }
}

/** Replaces `el`'s children (skipping absent ones, as `h` does). */
const fill = (el, ...children) => {
  el.replaceChildren()
  append(el, children)
}

class ApiError extends Error {
  constructor(status, json) {
    super(json?.message ?? `HTTP ${status}`)
    this.status = status
    this.json = json
  }
}

/** A JSON request to the dashboard's API; a non-2xx answer throws its `{ error, message }`. */
const api = async (path, init = {}) => {
  const response = await fetch(apiBase + path, {
    credentials: "same-origin",
    ...init,
    headers: { accept: "application/json", ...(init.body === undefined ? {} : { "content-type": "application/json" }), ...init.headers },
  })
  let json = null
  try {
    json = await response.json()
  } catch {
    json = { error: "not_json", message: `HTTP ${response.status}: the answer is not JSON` }
  }
  if (!response.ok) throw new ApiError(response.status, json)
  return json
}

const post = (path, payload = {}) => api(path, { method: "POST", body: JSON.stringify(payload) })

/**
 * Calls `tick` now and then again `pollMs` after it settles, while the tab is visible; never
 * sooner than ten times as long as the tick took, so a large run's page asks the server for at
 * most a tenth of its time, and later still when `tick` returns a longer delay. Returns a function
 * that ticks now (once the tick in flight, if any, has settled: never two at a time).
 */
const every = (tick) => {
  let timer
  let busy = false
  let again = false
  const loop = async () => {
    clearTimeout(timer)
    if (busy) {
      again = true
      return
    }
    busy = true
    const started = performance.now()
    let asked
    try {
      if (!document.hidden) asked = await tick()
    } catch (error) {
      flash(error.message, "error")
    } finally {
      busy = false
    }
    if (again) {
      again = false
      loop()
      return
    }
    const took = performance.now() - started
    timer = setTimeout(loop, Math.max(pollMs, 10 * took, typeof asked === "number" ? asked : 0))
  }
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) loop()
  })
  loop()
  return loop
}

const pad = (n, width = 2) => String(n).padStart(width, "0")

/** A local time, to the second: 2026-12-01 15:04:05. */
const formatTime = (iso) => {
  if (iso === null || iso === undefined) return "—"
  const d = new Date(iso)
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

const formatDuration = (ms) => {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—"
  if (ms < 1000) return `${Math.round(ms)} ms`
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`
  const sec = Math.round(ms / 1000)
  if (sec < 3600) return `${Math.floor(sec / 60)} m ${pad(sec % 60)} s`
  const min = Math.round(sec / 60)
  if (min < 1440) return `${Math.floor(min / 60)} h ${pad(min % 60)} m`
  return `${Math.floor(min / 1440)} d ${Math.floor((min % 1440) / 60)} h`
}

const runDuration = (run) => {
  const end = run.finishedAt === null ? Date.now() : Date.parse(run.finishedAt)
  return end - Date.parse(run.createdAt)
}

const badge = (state, text = state) => h("span", { class: `badge st-${state}`, "data-status": state }, text)

const shortId = (id) => (id.length > 13 ? `${id.slice(0, 8)}…` : id)

let flashTimer
/** A short message at the top of the page (errors stay until the next one). */
const flash = (message, kind = "info") => {
  let el = document.getElementById("flash")
  if (el === null) {
    el = h("div", { id: "flash", role: "status", "aria-live": "polite" })
    document.body.append(el)
  }
  el.textContent = message
  el.className = `flash flash-${kind}`
  clearTimeout(flashTimer)
  if (kind !== "error") flashTimer = setTimeout(() => el.classList.add("flash-hidden"), 4000)
}

const topBar = (...crumbs) =>
  h("header", { class: "top" }, h("a", { class: "brand", href: `${base}/` }, h("img", { src: `${base}/assets/favicon.svg`, alt: "" }), appTitle), ...crumbs.map((c) => h("span", { class: "crumb" }, c)))

// --- the runs list ----------------------------------------------------------------------------

const filterFields = [
  { name: "workflow", label: "Workflow", type: "text", placeholder: "any workflow" },
  { name: "status", label: "Status", type: "select" },
  { name: "from", label: "Created from", type: "datetime-local" },
  { name: "to", label: "Created before", type: "datetime-local" },
  { name: "error", label: "Error text", type: "text", placeholder: "text in the error" },
  { name: "key", label: "Idempotency key", type: "text", placeholder: "exact key" },
]

/** `datetime-local` text (local time) as an ISO instant, and back. */
const localToIso = (text) => (text === "" ? "" : new Date(text).toISOString())
const isoToLocal = (iso) => {
  const d = new Date(iso)
  if (Number.isNaN(d.getTime())) return ""
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`
}

const runsPage = () => {
  document.title = `Runs · ${appTitle}`
  const params = new URLSearchParams(location.search)
  const filter = {}
  for (const f of filterFields) {
    const v = params.get(f.name)
    if (v !== null && v !== "") filter[f.name] = v
  }

  const counts = h("section", { class: "counts", "aria-label": "runs by status" })
  const inputs = {}
  const form = h("form", { class: "filters card", onsubmit: (e) => {
    e.preventDefault()
    for (const f of filterFields) {
      const v = inputs[f.name].value.trim()
      const value = f.type === "datetime-local" ? localToIso(v) : v
      if (value === "") delete filter[f.name]
      else filter[f.name] = value
    }
    restart()
  } })
  for (const f of filterFields) {
    let input
    if (f.type === "select") {
      input = h("select", { name: f.name, id: `f-${f.name}` }, h("option", { value: "" }, "any status"), runStatuses.map((st) => h("option", { value: st }, st)))
      input.value = filter[f.name] ?? ""
    } else {
      input = h("input", { name: f.name, id: `f-${f.name}`, type: f.type, placeholder: f.placeholder, autocomplete: "off", list: f.name === "workflow" ? "workflows-seen" : undefined })
      input.value = f.type === "datetime-local" && filter[f.name] !== undefined ? isoToLocal(filter[f.name]) : (filter[f.name] ?? "")
    }
    inputs[f.name] = input
    form.append(h("label", { for: `f-${f.name}` }, h("span", {}, f.label), input))
  }
  form.append(h("div", { class: "filter-buttons" },
    h("button", { type: "submit", class: "primary" }, "Apply"),
    h("button", { type: "button", onclick: () => {
      for (const f of filterFields) {
        inputs[f.name].value = ""
        delete filter[f.name]
      }
      restart()
    } }, "Clear")))

  const tbody = h("tbody")
  const table = h("table", { class: "runs" },
    h("thead", {}, h("tr", {}, ["Run", "Workflow", "Status", "Nodes", "Created", "Duration", "Error"].map((t) => h("th", {}, t)))),
    tbody)
  const empty = h("p", { class: "empty", hidden: true }, "No run matches.")
  const more = h("button", { class: "more", hidden: true, onclick: () => loadMore() }, "More")
  // the workflow filter is an exact name: offered from the runs seen so far
  const workflowsSeen = new Set()
  const datalist = h("datalist", { id: "workflows-seen" })
  document.body.append(topBar("Runs"), h("main", { class: "runs-page" }, counts, form, datalist, h("div", { class: "card table-card" }, table, empty, more)))

  let rows = []
  let next = null
  let generation = 0

  const query = (extra = {}) => {
    const q = new URLSearchParams()
    for (const [k, v] of Object.entries({ ...filter, ...extra })) if (v !== undefined && v !== null && v !== "") q.set(k, String(v))
    const text = q.toString()
    return text === "" ? "" : `?${text}`
  }

  const drawCounts = (c) => {
    fill(counts,
      h("button", { class: `count count-total${filter.status === undefined ? " active" : ""}`, onclick: () => setStatus(undefined) },
        h("span", { class: "count-n", "data-count": "total" }, c.total), h("span", { class: "count-label" }, "runs")),
      ...runStatuses.map((st) =>
        h("button", { class: `count st-${st}${filter.status === st ? " active" : ""}`, onclick: () => setStatus(filter.status === st ? undefined : st) },
          h("span", { class: "count-n", "data-count": st }, c.byStatus[st] ?? 0), h("span", { class: "count-label" }, st))),
    )
  }

  const setStatus = (st) => {
    if (st === undefined) delete filter.status
    else filter.status = st
    inputs.status.value = st ?? ""
    restart()
  }

  const nodeBar = (nodes) => {
    const total = Object.values(nodes).reduce((a, b) => a + b, 0)
    const bar = h("span", { class: "nodebar", title: Object.entries(nodes).map(([k, v]) => `${v} ${k}`).join(", ") })
    for (const st of statePriority) {
      const n = nodes[st] ?? 0
      if (n === 0) continue
      const seg = h("span", { class: `seg st-${st}` })
      seg.style.width = `${(100 * n) / total}%`
      bar.append(seg)
    }
    return h("span", { class: "nodes-cell" }, bar, h("span", { class: "muted" }, `${nodes.succeeded ?? 0}/${total}`))
  }

  const drawRows = () => {
    const before = workflowsSeen.size
    for (const run of rows) workflowsSeen.add(run.workflow)
    if (workflowsSeen.size !== before) fill(datalist, [...workflowsSeen].sort().map((w) => h("option", { value: w })))
    fill(tbody, ...rows.map((run) =>
      h("tr", { "data-run": run.id, "data-status": run.status },
        h("td", { class: "mono" }, h("a", { href: `${base}/runs/${encodeURIComponent(run.id)}`, title: run.id }, shortId(run.id))),
        h("td", {}, run.workflow, run.idempotencyKey === null ? null : h("div", { class: "muted small", title: "idempotency key" }, run.idempotencyKey)),
        h("td", {}, badge(run.status)),
        h("td", {}, nodeBar(run.nodes)),
        h("td", { class: "nowrap" }, formatTime(run.createdAt)),
        h("td", { class: "nowrap" }, formatDuration(runDuration(run))),
        h("td", { class: "error-cell", title: run.error === null ? "" : `${run.error.tag}: ${run.error.message}` },
          run.error === null ? "" : h("span", {}, h("b", {}, run.error.tag), " ", run.error.message)),
      )))
    empty.hidden = rows.length > 0
    more.hidden = next === null
  }

  const syncUrl = () => history.replaceState(null, "", `${location.pathname}${query()}`)

  // the shown runs again (as many as are shown, up to a page's bound) and the counts
  const refresh = async () => {
    const mine = generation
    const limit = Math.min(500, Math.max(50, rows.length))
    const [c, page] = await Promise.all([api(`/runs/counts${query({ cursor: undefined })}`), api(`/runs${query({ limit })}`)])
    if (mine !== generation) return
    drawCounts(c)
    if (rows.length > limit) {
      const fresh = new Set(page.runs.map((r) => r.id))
      rows = [...page.runs, ...rows.slice(limit).filter((r) => !fresh.has(r.id))]
    } else {
      rows = page.runs
      next = page.next
    }
    drawRows()
    for (const f of filterFields) inputs[f.name].classList.remove("invalid")
  }

  const loadMore = async () => {
    if (next === null) return
    const mine = generation
    try {
      const page = await api(`/runs${query({ cursor: next, limit: 50 })}`)
      if (mine !== generation) return
      const seen = new Set(rows.map((r) => r.id))
      rows = [...rows, ...page.runs.filter((r) => !seen.has(r.id))]
      next = page.next
      drawRows()
    } catch (error) {
      flash(error.message, "error")
    }
  }

  const tick = async () => {
    try {
      await refresh()
    } catch (error) {
      if (error instanceof ApiError && error.json?.field !== undefined && inputs[error.json.field] !== undefined) {
        inputs[error.json.field].classList.add("invalid")
      }
      throw error
    }
  }
  const kick = every(tick)
  const restart = () => {
    generation++
    rows = []
    next = null
    syncUrl()
    kick()
  }
}

// --- one run ------------------------------------------------------------------------------

/** How many of `rows` are in each state. */
const tally = (rows) => {
  const counts = {}
  for (const r of rows) counts[r.state] = (counts[r.state] ?? 0) + 1
  return counts
}

const aggregateState = (counts) => {
  for (const st of statePriority) if ((counts[st] ?? 0) > 0) return st
  return "none"
}

/** What one graph node shows: its state, the line under its label, and its tooltip. */
const nodeView = (node, detail, rowsOf, progressOf) => {
  const rows = rowsOf.get(node.id) ?? []
  const counts = tally(rows)
  const state = rows.length === 0 ? "none" : aggregateState(counts)
  const instanced = node.scope !== null || node.kind === "shard"
  const progress = progressOf.get(node.id) ?? []
  let line
  let fraction = null
  if (node.kind === "map" || node.kind === "iterate") {
    const done = progress.reduce((n, p) => n + p.done, 0)
    const known = progress.length > 0 && progress.every((p) => p.expected !== null)
    const expected = known ? progress.reduce((n, p) => n + p.expected, 0) : null
    const unit = node.kind === "map" ? "elements" : "shards"
    line = rows.length === 0 ? "not yet" : expected === null ? `${state}` : `${done}/${expected} ${unit}`
    if (expected !== null) fraction = expected === 0 ? 1 : done / expected
    if (node.kind === "iterate") {
      const walked = progress.reduce((n, p) => n + (p.rows?.done ?? 0), 0)
      const estimate = progress.reduce((n, p) => n + (p.rows?.estimate ?? 0), 0)
      if (walked > 0 || estimate > 0) line += ` · ${walked}/${estimate} rows`
    }
  } else if (instanced && (rows.length > 1 || rows.some((r) => r.id !== node.id))) {
    // a template: its instances as done / expected (the expected count is its map's)
    const expected = expectedInstances(node, detail, progressOf)
    const done = counts.succeeded ?? 0
    line = `${done}/${expected ?? rows.length} ${state === "succeeded" ? "done" : state}`
    fraction = (expected ?? rows.length) === 0 ? 1 : done / (expected ?? rows.length)
  } else if (rows.length === 0) {
    line = "not yet"
  } else {
    const r = rows[0]
    line = r.attempt > 1 ? `${r.state} · try ${r.attempt}` : r.state
    if (r.durationMs !== null && r.state === "succeeded") line += ` · ${formatDuration(r.durationMs)}`
  }
  const tip = [`${node.label}`, `id: ${node.id}`, `kind: ${node.kind}`]
  if (rows.length > 1) tip.push(Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(", "))
  return { state, line, fraction, tip: tip.join("\n"), counts }
}

/** A template node's expected instances: its map's (or iteration's) expected count, summed over that map's own instances. */
const expectedInstances = (node, detail, progressOf) => {
  const owner = node.kind === "shard" ? detail.graph.nodes.find((n) => n.kind === "iterate" && n.shard === node.id)?.id : node.scope
  if (owner === undefined) return null
  const progress = progressOf.get(owner) ?? []
  if (progress.length === 0 || progress.some((p) => p.expected === null)) return null
  return progress.reduce((n, p) => n + p.expected, 0)
}

const maxLabel = 34
const cut = (text, max) => (text.length > max ? `${text.slice(0, max - 1)}…` : text)

/** The SVG of a laid-out graph; returns it and a function that colours it from a run's detail. */
const drawGraph = (layout, onSelect) => {
  const svg = s("svg", { class: "graph", viewBox: `0 0 ${layout.width} ${layout.height}`, width: layout.width, height: layout.height, role: "img", "aria-label": "the run's graph" })
  svg.append(s("defs", {},
    s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" })),
  ))
  const clusterLayer = s("g", { class: "clusters" })
  // a cluster's label sits above the edges that cross its top, on a halo of the cluster's colour
  const clusterLabels = s("g", { class: "cluster-labels" })
  for (const c of layout.clusters) {
    clusterLayer.append(s("g", { class: "cluster", "data-cluster": c.id },
      s("rect", { x: c.x - c.width / 2, y: c.y - c.height / 2, width: c.width, height: c.height, rx: 10 })))
    clusterLabels.append(s("text", { x: c.x - c.width / 2 + 8, y: c.y - c.height / 2 + 14, class: "cluster-label" }, c.label))
  }
  const edgeLayer = s("g", { class: "edges" })
  for (const e of layout.edges) {
    if (e.points.length === 0) continue
    const d = e.points.map((p, i) => `${i === 0 ? "M" : "L"}${p.x},${p.y}`).join(" ")
    edgeLayer.append(s("path", { d, class: `edge edge-${e.kind}`, "marker-end": "url(#arrow)", "data-from": e.from, "data-to": e.to }))
    if (e.slot !== null || e.kind === "onError") {
      const mid = e.points[Math.floor(e.points.length / 2)]
      edgeLayer.append(s("text", { x: mid.x + 5, y: mid.y - 3, class: "edge-label" }, e.kind === "onError" ? `onError of ${e.covers} step${e.covers === 1 ? "" : "s"}` : String(e.slot)))
    }
  }
  const nodeLayer = s("g", { class: "nodes" })
  const parts = new Map()
  for (const n of layout.nodes) {
    const x = n.x - n.width / 2
    const y = n.y - n.height / 2
    const rect = s("rect", { x, y, width: n.width, height: n.height, rx: n.kind === "delay" ? n.height / 2 : n.kind === "join" || n.kind === "collect" ? 14 : 6, class: "box" })
    const barBack = s("rect", { x: x + 8, y: y + n.height - 9, width: n.width - 16, height: 4, rx: 2, class: "bar-back", visibility: "hidden" })
    const bar = s("rect", { x: x + 8, y: y + n.height - 9, width: 0, height: 4, rx: 2, class: "bar", visibility: "hidden" })
    const title = s("title", {}, n.label)
    const line = s("text", { x: n.x, y: n.y + 13, class: "node-line" }, "")
    const g = s("g", {
      class: `node kind-${n.kind}${n.role === null ? "" : ` role-${n.role}`} st-none`,
      "data-node": n.id,
      "data-state": "none",
      tabindex: 0,
      role: "button",
      "aria-label": `${n.label} (${n.id})`,
      onclick: () => onSelect(n.id),
      onkeydown: (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault()
          onSelect(n.id)
        }
      },
    },
      title,
      rect,
      s("text", { x: n.x, y: n.y - 5, class: "node-label" }, cut(n.label, maxLabel)),
      line,
      barBack,
      bar)
    nodeLayer.append(g)
    parts.set(n.id, { g, title, line, bar, barBack, node: n })
  }
  svg.append(clusterLayer, edgeLayer, clusterLabels, nodeLayer)

  const paint = (detail, selected) => {
    const rowsOf = new Map()
    for (const r of detail.nodes) {
      const list = rowsOf.get(r.template) ?? []
      list.push(r)
      rowsOf.set(r.template, list)
    }
    const templateOf = new Map(detail.nodes.map((r) => [r.id, r.template]))
    const progressOf = new Map()
    for (const p of detail.progress) {
      const t = templateOf.get(p.node) ?? p.node
      const list = progressOf.get(t) ?? []
      list.push(p)
      progressOf.set(t, list)
    }
    for (const { g, title, line, bar, barBack, node } of parts.values()) {
      const view = nodeView(node, detail, rowsOf, progressOf)
      g.setAttribute("class", `node kind-${node.kind}${node.role === null ? "" : ` role-${node.role}`} st-${view.state}${selected === node.id ? " selected" : ""}`)
      g.setAttribute("data-state", view.state)
      g.setAttribute("data-line", view.line)
      title.textContent = view.tip
      line.textContent = view.line
      const shown = view.fraction !== null
      bar.setAttribute("visibility", shown ? "visible" : "hidden")
      barBack.setAttribute("visibility", shown ? "visible" : "hidden")
      if (shown) bar.setAttribute("width", String(Math.max(0, Math.min(1, view.fraction)) * Number(barBack.getAttribute("width"))))
    }
  }
  return { svg, paint }
}

/** A stored value as text: pretty JSON, or the cut preview with its whole size. */
const valueBlock = (stored, fetchFull) => {
  if (stored === null) return h("p", { class: "muted" }, "none")
  if (!stored.truncated) return h("pre", { class: "value" }, JSON.stringify(stored.value, null, 2) ?? "undefined")
  const pre = h("pre", { class: "value" }, `${stored.preview}…`)
  const button = h("button", { class: "small-button", onclick: async () => {
    button.disabled = true
    try {
      const full = await fetchFull()
      pre.textContent = JSON.stringify(full.value, null, 2)
      note.textContent = `${full.bytes} bytes, whole`
      button.remove()
    } catch (error) {
      flash(error.message, "error")
      button.disabled = false
    }
  } }, "Show the full value")
  const note = h("span", { class: "muted small" }, `cut; ${stored.bytes} bytes in all `)
  return h("div", {}, pre, h("div", { class: "value-note" }, note, button))
}

const errorBlock = (error) =>
  error === null ? null : h("div", { class: "error-block" },
    h("div", {}, h("b", {}, error.tag), " ", error.message),
    error.stack ? h("details", {}, h("summary", {}, "stack"), h("pre", { class: "value" }, error.stack)) : null)

const field = (label, ...value) => h("div", { class: "field" }, h("span", { class: "field-label" }, label), h("span", { class: "field-value" }, ...value))

const runPage = () => {
  const runId = body.dataset.run
  document.title = `Run ${shortId(runId)} · ${appTitle}`
  const head = h("section", { class: "run-head card" })
  const actions = h("div", { class: "actions" })
  const graphBox = h("div", { class: "graph-box" }, h("p", { class: "muted" }, "Laying out the graph…"))
  const details = h("aside", { class: "details card", "aria-label": "node details" }, h("p", { class: "muted" }, "Select a node to see its input, output, error and tries."))
  const timeline = h("section", { class: "timeline card" })
  const values = h("section", { class: "run-values card" })
  document.body.append(
    topBar(h("a", { href: `${base}/` }, "Runs"), h("span", { class: "mono" }, shortId(runId))),
    h("main", { class: "run-page" }, head, h("div", { class: "run-grid" }, h("section", { class: "card graph-card" }, h("h2", {}, "Graph"), graphBox), details), timeline, values),
  )

  let detail = null
  let graph = null
  let selected = null
  let selectedRow = null
  let lastSeen = ""
  let kick = () => undefined
  const enc = encodeURIComponent

  const select = (template) => {
    selected = template
    selectedRow = null
    redraw(true)
  }

  const act = async (button, path, payload, done) => {
    button.disabled = true
    try {
      const answer = await post(`/runs/${enc(runId)}/${path}`, payload)
      flash(done(answer), "info")
    } catch (error) {
      flash(error.message, "error")
    } finally {
      button.disabled = false
      lastSeen = ""
      kick()
    }
  }

  const drawHead = () => {
    const d = detail
    fill(head,
      h("div", { class: "run-title" },
        h("h1", {}, d.workflow),
        badge(d.status),
        h("span", { class: "mono muted", title: "run id" }, d.id)),
      h("div", { class: "fields" },
        field("created", formatTime(d.createdAt)),
        field("finished", formatTime(d.finishedAt)),
        field("duration", formatDuration(runDuration(d))),
        d.idempotencyKey === null ? null : field("idempotency key", d.idempotencyKey),
        field("graph", h("span", { class: "mono" }, d.graphHash.slice(0, 12)))),
      errorBlock(d.error),
      actions,
    )
    const retry = h("button", { id: "retry", class: "primary", disabled: d.status !== "failed", title: "a new try of each failed node, keeping what succeeded",
      onclick: () => act(retry, "retry", {}, (a) => `Retried ${a.nodes.length} node${a.nodes.length === 1 ? "" : "s"}`) }, "Retry")
    const resume = h("button", { id: "resume", disabled: d.status !== "parked", title: "put the parked nodes back to ready",
      onclick: () => act(resume, "resume", {}, (a) => `Resumed ${a.nodes.join(", ")}`) }, "Resume")
    const revoke = h("button", { id: "revoke", class: "danger", disabled: finalStatuses.has(d.status), title: "revoke the run: nothing more starts",
      onclick: () => {
        if (!confirm("Revoke this run? Running tries are interrupted and nothing more starts.")) return
        act(revoke, "revoke", { reason: "revoked from the dashboard" }, (a) => (a.outcome === "Revoked" ? `Revoked ${a.nodes} nodes` : `Already ${a.status}`))
      } }, "Revoke")
    fill(actions, retry, resume, revoke)
  }

  const drawDetails = () => {
    if (selected === null) return
    const node = detail.graph.nodes.find((n) => n.id === selected)
    const laid = graph?.layout.nodes.find((n) => n.id === selected)
    const rows = detail.nodes.filter((r) => r.template === selected)
    const row = rows.length === 1 ? rows[0] : rows.find((r) => r.id === selectedRow) ?? null
    const parts = [
      h("div", { class: "details-head" }, h("h2", {}, laid?.label ?? selected), h("button", { class: "small-button", "aria-label": "close", onclick: () => {
        selected = null
        fill(details, h("p", { class: "muted" }, "Select a node to see its input, output, error and tries."))
        redraw(false)
      } }, "×")),
      h("div", { class: "fields" },
        field("node", h("span", { class: "mono" }, selected)),
        field("kind", node?.kind ?? "?"),
        node?.task === undefined ? null : field("task", node.task),
        node?.role === undefined ? null : field("role", node.role),
        node?.onError === undefined ? null : field("on error", h("span", { class: "mono" }, node.onError))),
      covering(selected),
    ]
    if (rows.length === 0) parts.push(h("p", { class: "muted" }, "Not started yet."))
    if (rows.length > 1) {
      const shown = rows.slice(0, 200)
      parts.push(h("h3", {}, `${rows.length} instances`), h("div", { class: "instances" },
        h("table", { class: "mini" }, h("tbody", {}, shown.map((r) => h("tr", { class: r.id === selectedRow ? "selected" : "", "data-row": r.id, onclick: () => {
          selectedRow = r.id
          redraw(true)
        } }, h("td", { class: "mono" }, r.id.slice(r.template.length) || r.id), h("td", {}, badge(r.state)), h("td", {}, `try ${r.attempt}`), h("td", {}, formatDuration(r.durationMs)))))),
        rows.length > shown.length ? h("p", { class: "muted small" }, `and ${rows.length - shown.length} more`) : null))
    }
    if (row !== null) parts.push(rowDetails(row))
    fill(details, ...parts)
  }

  // a handler's entry: the steps whose failure for good starts it
  const covering = (id) => {
    const steps = detail.graph.nodes.filter((n) => n.onError === id && n.kind === "task")
    if (steps.length === 0) return null
    return h("p", { class: "small muted" }, `Runs when one of these fails for good: ${steps.map((n) => n.task).join(", ")}.`)
  }

  const rowDetails = (row) => {
    const box = h("div", { class: "row-details", "data-row": row.id })
    const nodePath = `/runs/${enc(runId)}/nodes/${enc(row.id)}`
    const buttons = h("div", { class: "actions" })
    if (row.state === "parked") {
      const b = h("button", { onclick: () => act(b, "resume", { node: row.id }, () => `Resumed ${row.id}`) }, "Resume this node")
      buttons.append(b)
    }
    if (!["succeeded", "failed", "revoked", "cancelled"].includes(row.state) && !finalStatuses.has(detail.status)) {
      const b = h("button", { class: "danger", onclick: () => {
        if (!confirm(`Revoke ${row.id} and what follows it?`)) return
        act(b, "revoke", { node: row.id, reason: "revoked from the dashboard" }, (a) => (a.outcome === "Revoked" ? `Revoked ${a.nodes} nodes` : `Already ${a.status}`))
      } }, "Revoke from here")
      buttons.append(b)
    }
    append(box, [
      h("h3", {}, row.id === row.template ? "This node" : `Instance ${row.id}`),
      h("div", { class: "fields" },
        field("state", badge(row.state)),
        field("try", String(row.attempt)),
        field("started", formatTime(row.startedAt)),
        field("finished", formatTime(row.finishedAt)),
        field("duration", formatDuration(row.durationMs)),
        row.dueAt === null ? null : field("due", formatTime(row.dueAt)),
        row.expected === null && row.arrived === 0 ? null : field("inputs", `${row.arrived}/${row.expected ?? "?"}`),
        row.shard === null ? null : field("rows", `${row.shard.rows}/${row.shard.estimate} (${row.shard.pages} pages)`)),
      buttons.childElementCount > 0 ? buttons : null,
      errorBlock(row.error),
      h("h4", {}, "Input"), valueBlock(row.input, () => api(`${nodePath}/input`)),
      h("h4", {}, "Output"), valueBlock(row.output, () => api(`${nodePath}/output`)),
      h("h4", {}, `Tries (${row.attempts.length})`),
      row.attempts.length === 0 ? h("p", { class: "muted" }, "none finished") : h("table", { class: "mini" },
        h("thead", {}, h("tr", {}, ["try", "outcome", "started", "took", "error"].map((t) => h("th", {}, t)))),
        h("tbody", {}, row.attempts.map((a) => h("tr", {},
          h("td", {}, String(a.attempt)),
          h("td", {}, badge(outcomeState(a.outcome), a.outcome)),
          h("td", { class: "nowrap" }, formatTime(a.startedAt)),
          h("td", { class: "nowrap" }, formatDuration(a.durationMs)),
          h("td", { class: "error-cell" }, a.error === null ? "" : `${a.error.tag}: ${a.error.message}`))))),
    ])
    return box
  }

  const outcomeState = (outcome) => ({ succeeded: "succeeded", retry: "failing", continued: "ready", failed: "failed", parked: "parked", revoked: "revoked", running: "running" })[outcome] ?? "none"

  const drawTimeline = () => {
    const entries = detail.timeline
    const now = Date.now()
    const byNode = new Map()
    for (const e of entries) {
      const list = byNode.get(e.node) ?? []
      list.push(e)
      byNode.set(e.node, list)
    }
    const heading = h("h2", {}, "Timeline")
    if (entries.length === 0) {
      fill(timeline, heading, h("p", { class: "muted" }, "No try has started yet."))
      return
    }
    const t0 = Math.min(...entries.map((e) => Date.parse(e.startedAt)))
    const t1 = Math.max(t0 + 1, ...entries.map((e) => (e.finishedAt === null ? now : Date.parse(e.finishedAt))))
    const span = t1 - t0
    const maxRows = 300
    const nodes = [...byNode.keys()]
    const lanes = nodes.slice(0, maxRows).map((node) => {
      const track = h("div", { class: "track" })
      for (const e of byNode.get(node)) {
        const start = Date.parse(e.startedAt)
        const end = e.finishedAt === null ? now : Date.parse(e.finishedAt)
        const bar = h("span", { class: `tbar st-${outcomeState(e.outcome)}`, title: `${node} try ${e.attempt}: ${e.outcome}, ${formatDuration(e.durationMs ?? end - start)} from ${formatTime(e.startedAt)}` })
        bar.style.left = `${(100 * (start - t0)) / span}%`
        bar.style.width = `max(3px, ${(100 * (end - start)) / span}%)`
        track.append(bar)
      }
      const tries = byNode.get(node).length
      return h("div", { class: "lane", "data-node": node },
        h("span", { class: "lane-label mono", title: node }, cut(node, 28)),
        track,
        h("span", { class: "lane-note muted small" }, `${tries > 1 ? `${tries} tries · ` : ""}${formatDuration(byNode.get(node).reduce((n, e) => n + (e.durationMs ?? now - Date.parse(e.startedAt)), 0))}`))
    })
    fill(timeline,
      heading,
      h("div", { class: "axis muted small" }, h("span", {}, formatTime(new Date(t0).toISOString())), h("span", {}, `${formatDuration(span)} in all`)),
      h("div", { class: "lanes" }, lanes),
      nodes.length > maxRows ? h("p", { class: "muted small" }, `and ${nodes.length - maxRows} more nodes`) : null,
    )
  }

  const drawValues = () => {
    fill(values,
      h("h2", {}, "Run input and output"),
      h("div", { class: "two" },
        h("div", {}, h("h4", {}, "Input"), valueBlock(detail.input, () => api(`/runs/${enc(runId)}/input`))),
        h("div", {}, h("h4", {}, "Output"), valueBlock(detail.output, () => api(`/runs/${enc(runId)}/output`)))))
  }

  const redraw = (withDetails) => {
    if (detail === null) return
    graph?.paint(detail, selected)
    if (withDetails) drawDetails()
  }

  const tick = async () => {
    if (graph === null) {
      try {
        const layout = await api(`/runs/${enc(runId)}/layout`)
        const drawn = drawGraph(layout, select)
        graph = { layout, ...drawn }
        fill(graphBox, drawn.svg, legend())
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          fill(head, h("h1", {}, "No such run"), h("p", { class: "muted mono" }, runId))
          fill(graphBox)
          return
        }
        throw error
      }
    }
    const fresh = await api(`/runs/${enc(runId)}/detail?maxBytes=2048`)
    const seen = JSON.stringify(fresh)
    // a running try's bar grows with the clock even when nothing was written
    const running = fresh.timeline.some((e) => e.finishedAt === null) || !finalStatuses.has(fresh.status)
    // a finished run changes only when someone acts on it: looked at less often
    if (seen === lastSeen && !running) return 5 * pollMs
    const changed = seen !== lastSeen
    lastSeen = seen
    detail = fresh
    body.dataset.status = detail.status
    drawHead()
    redraw(changed)
    drawTimeline()
    if (changed) drawValues()
  }

  const legend = () =>
    h("div", { class: "legend small" }, ["none", "waiting", "ready", "running", "succeeded", "failed", "parked", "revoked", "cancelled"].map((st) =>
      h("span", { class: "legend-item" }, h("span", { class: `swatch st-${st}` }), st === "none" ? "not yet" : st)))

  kick = every(tick)
}

if (body.dataset.page === "run") runPage()
else runsPage()
