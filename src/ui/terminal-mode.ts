/**
 * Ink draws only its final frame when it believes it runs in CI (the CI variable is set), which would leave a
 * real terminal blank for the whole run. The dashboard opens only on an interactive terminal, so there the
 * belief is wrong: the variables are overridden before Ink loads (its is-in-ci check reads them once, at import).
 * Import this module before `ink`.
 */
if (process.stdout.isTTY && process.stdin.isTTY) {
  for (const name of ['CI', 'CONTINUOUS_INTEGRATION']) {
    if (name in process.env) process.env[name] = 'false';
  }
}
