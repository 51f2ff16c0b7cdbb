// Refuses to run on Node older than 22. npm scripts are meant to run on the Node 24 that the
// `node` devDependency installs into node_modules/.bin; an install made with --ignore-scripts
// leaves that out silently and the machine's own (older) Node takes over.
// Plain JavaScript on purpose: it must run, and explain itself, on an old Node.
const major = Number(process.versions.node.split(".")[0])
if (major < 22) {
  console.error(
    "taskgraph needs Node 22 or newer (it is developed on Node 24), but this is Node " +
      process.versions.node +
      ".\nRun `npm ci` (without --ignore-scripts) so the `node` devDependency installs Node 24," +
      " then use the npm scripts (`npm test`, `npm start`), which run on it.",
  )
  process.exit(1)
}
