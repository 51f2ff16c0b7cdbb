// Runs in every test worker before the test files: keeps Google clients from probing the GCE
// metadata server (169.254.169.254) for credentials.
process.env.METADATA_SERVER_DETECTION = "none"
