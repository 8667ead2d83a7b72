// Loaded into every test file's process by scripts/test.sh (`node --import`).
//
// Under `--test-force-exit` with `--test-concurrency` > 1, Node's test runner may exit a test file's
// process while its last verdicts are still buffered in the stdout pipe to the parent
// (nodejs/node#64833): those tests vanish from the report, failures included, and the run can still
// exit 0. Making the pipe's writes blocking flushes every verdict before the exit.
process.stdout._handle?.setBlocking?.(true)
