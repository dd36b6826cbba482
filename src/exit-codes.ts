/** The exit statuses of every `mnist-gpujs` command, shared by the command line and the dashboard. */

export const EXIT_OK = 0;
/** The command failed: a bad input file, an unavailable backend, an internal error. */
export const EXIT_FAILURE = 1;
/** The command line itself was wrong (a flag's value, flags that do not combine, no terminal for the dashboard). */
export const EXIT_USAGE = 2;
/** A run stopped by Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;
