//go:build race

package agent

// raceEnabled: built with -race, which slows the server and its clients
// 5-10x; load tests size their bursts to it.
const raceEnabled = true
