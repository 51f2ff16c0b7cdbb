/**
 * DueHeap: a binary min-heap of values by due time (ties in insertion order), so a queue finds
 * its next task to dispatch in O(log n) however many tasks wait. Removal is lazy: the caller
 * skips entries it no longer wants with `peekWhere`.
 *
 * ```ts
 * const heap = new DueHeap<Task>()
 * heap.push(task, task.scheduleMs)
 * const next = heap.peekWhere((t) => !t.removed) // drops stale entries on the way
 * ```
 */

interface Entry<A> {
  readonly dueMs: number
  readonly seq: number
  readonly value: A
}

export class DueHeap<A> {
  readonly #entries: Array<Entry<A>> = []
  #seq = 0

  push(value: A, dueMs: number): void {
    this.#entries.push({ dueMs, seq: this.#seq++, value })
    this.#up(this.#entries.length - 1)
  }

  /** The earliest entry whose value passes `live`, after discarding earlier entries that fail it. */
  peekWhere(live: (value: A, dueMs: number) => boolean): { readonly value: A; readonly dueMs: number } | undefined {
    for (;;) {
      const top = this.#entries[0]
      if (top === undefined) return undefined
      if (live(top.value, top.dueMs)) return top
      this.pop()
    }
  }

  pop(): A | undefined {
    const entries = this.#entries
    const top = entries[0]
    const last = entries.pop()
    if (top === undefined || last === undefined) return undefined
    if (entries.length > 0) {
      entries[0] = last
      this.#down(0)
    }
    return top.value
  }

  clear(): void {
    this.#entries.length = 0
  }

  #less(i: number, j: number): boolean {
    const a = this.#entries[i]!
    const b = this.#entries[j]!
    return a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.seq < b.seq)
  }

  #swap(i: number, j: number): void {
    const entries = this.#entries
    const tmp = entries[i]!
    entries[i] = entries[j]!
    entries[j] = tmp
  }

  #up(i: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!this.#less(i, parent)) return
      this.#swap(i, parent)
      i = parent
    }
  }

  #down(i: number): void {
    const n = this.#entries.length
    for (;;) {
      const left = 2 * i + 1
      const right = left + 1
      let smallest = i
      if (left < n && this.#less(left, smallest)) smallest = left
      if (right < n && this.#less(right, smallest)) smallest = right
      if (smallest === i) return
      this.#swap(i, smallest)
      i = smallest
    }
  }
}
