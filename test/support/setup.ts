// Runs in every test worker before the test files: keeps Google clients from probing the cloud
// metadata server for credentials (every client here talks to 127.0.0.1 only).
process.env.METADATA_SERVER_DETECTION = "none"
