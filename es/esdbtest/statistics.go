package esdbtest

import (
	"math"
	"slices"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/persistent"
)

// maxLatencies bounds the latencies a consumer keeps: the newest ones.
const maxLatencies = 4096

// latencies are the times between the dispatch of a message to a consumer
// and its acknowledgement, measured when a group has extra statistics on.
type latencies []time.Duration

// add records one latency, dropping the oldest beyond maxLatencies.
func (l *latencies) add(d time.Duration) {
	if len(*l) == maxLatencies {
		*l = slices.Delete(*l, 0, 1)
	}
	*l = append(*l, d)
}

// measurements returns the observed measurements GetInfo reports for a
// connection when on: the keys EventStoreDB uses (Mean, Median, Fastest,
// Quintile 1-5, 90%, 95%, 99%, 99.5%, 99.9%, Highest), in milliseconds.
// There are none while nothing was acknowledged.
func (l latencies) measurements(on bool) []*persistent.SubscriptionInfo_Measurement {
	if !on || len(l) == 0 {
		return nil
	}
	sorted := slices.Clone(l)
	slices.Sort(sorted)
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	percentile := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(sorted)))) - 1
		return sorted[min(max(i, 0), len(sorted)-1)]
	}
	figures := []struct {
		key   string
		value time.Duration
	}{
		{"Mean", sum / time.Duration(len(sorted))},
		{"Median", percentile(0.5)},
		{"Fastest", sorted[0]},
		{"Quintile 1", percentile(0.2)},
		{"Quintile 2", percentile(0.4)},
		{"Quintile 3", percentile(0.6)},
		{"Quintile 4", percentile(0.8)},
		{"Quintile 5", sorted[len(sorted)-1]},
		{"90%", percentile(0.9)},
		{"95%", percentile(0.95)},
		{"99%", percentile(0.99)},
		{"99.5%", percentile(0.995)},
		{"99.9%", percentile(0.999)},
		{"Highest", sorted[len(sorted)-1]},
	}
	out := make([]*persistent.SubscriptionInfo_Measurement, 0, len(figures))
	for _, f := range figures {
		out = append(out, &persistent.SubscriptionInfo_Measurement{Key: f.key, Value: f.value.Milliseconds()})
	}
	return out
}
