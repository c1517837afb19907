"""The `bodywork` command line, the outermost layer (core → k8s → engine → cli).

`main` builds the parser from one module per command group (run, deploy, cronjob,
secret, history); `settings` derives runs, plans and shared options from the parsed
arguments; `output` prints; `logsetup` configures logging.
"""
