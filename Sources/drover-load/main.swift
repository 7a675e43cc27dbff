// drover-load: the project's MQTT load generator. See Scenarios.swift for the commands, bench/run.sh for their use.
raiseOpenFileLimit()
await runDroverLoad()
