/**
 * The dashboard's browser files (assets/: app.js, app.css, favicon.svg), plain JavaScript and CSS
 * that ship in the package beside this module: the repository serves them from its sources,
 * the built package from dist/ (scripts/build.ts copies the folder there). Each is read once,
 * on first request, and served with a strong ETag of its content.
 */
import { createHash } from "node:crypto"
import { readFile } from "node:fs/promises"

export interface Asset {
  readonly body: string
  readonly contentType: string
  readonly etag: string
}

/** The files the dashboard serves, by name, with their types. */
const assetTypes: Readonly<Record<string, string>> = {
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
  "favicon.svg": "image/svg+xml",
}

const loaded = new Map<string, Promise<Asset>>()

/** The asset `name` (one of `assetTypes`), or undefined for any other name. */
export const readAsset = (name: string): Promise<Asset> | undefined => {
  const contentType = Object.hasOwn(assetTypes, name) ? assetTypes[name] : undefined
  if (contentType === undefined) return undefined
  let asset = loaded.get(name)
  if (asset === undefined) {
    asset = readFile(new URL(`./assets/${name}`, import.meta.url), "utf8").then((body) => ({
      body,
      contentType,
      etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
    }))
    // a failed read (a package installed without its assets) is tried again on the next request
    asset.catch(() => loaded.delete(name))
    loaded.set(name, asset)
  }
  return asset
}
