// Command peer-load posts one leaf per request to a tlog-tiles log's /add (Tessera's POSIX
// conformance server) from N writers for a fixed time, polls /checkpoint every 50 ms, and prints
// one JSON object: leaves accepted per second, and per leaf the time from its answer to the first
// checkpoint that covers its index (p50, p99, max), as `sealtrail bench` measures Sealtrail.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

type ack struct {
	at    time.Time
	index uint64
}

type grown struct {
	at   time.Time
	size uint64
}

func percentiles(v []float64) map[string]float64 {
	if len(v) == 0 {
		return map[string]float64{}
	}
	sort.Float64s(v)
	r := func(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }
	return map[string]float64{"p50": r(v[len(v)/2]), "p99": r(v[int(0.99*float64(len(v)-1))]), "max": r(v[len(v)-1])}
}

func checkpointSize(c *http.Client, url string) (uint64, error) {
	resp, err := c.Get(url + "checkpoint")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("checkpoint: %d %v", resp.StatusCode, err)
	}
	lines := strings.SplitN(string(body), "\n", 3)
	if len(lines) < 3 {
		return 0, fmt.Errorf("checkpoint: %q is not a checkpoint", body)
	}
	return strconv.ParseUint(lines[1], 10, 64)
}

func main() {
	url := flag.String("url", "", "log root URL, ending in /")
	writers := flag.Int("writers", 64, "concurrent writers, one request in flight each")
	seconds := flag.Float64("seconds", 15, "how long to send")
	leafBytes := flag.Int("leaf_bytes", 1024, "size of each leaf")
	flag.Parse()
	if *url == "" {
		fmt.Fprintln(os.Stderr, "peer-load: -url is required")
		os.Exit(2)
	}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		MaxIdleConns: *writers + 2, MaxIdleConnsPerHost: *writers + 2}}
	run := time.Now().UnixNano()
	pad := bytes.Repeat([]byte("x"), *leafBytes)

	var mu sync.Mutex
	var acks []ack
	var requests []float64
	statuses := map[string]int{}
	var seen []grown
	stopPoll := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopPoll:
				return
			case <-tick.C:
				if size, err := checkpointSize(client, *url); err == nil {
					mu.Lock()
					if len(seen) == 0 || size > seen[len(seen)-1].size {
						seen = append(seen, grown{time.Now(), size})
					}
					mu.Unlock()
				}
			}
		}
	}()

	start := time.Now()
	end := start.Add(time.Duration(*seconds * float64(time.Second)))
	var wg sync.WaitGroup
	for w := 0; w < *writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; time.Now().Before(end); n++ {
				leaf := fmt.Appendf(nil, "%d-%d-%d ", run, w, n)
				leaf = append(leaf, pad[:max(0, *leafBytes-len(leaf))]...)
				posted := time.Now()
				resp, err := client.Post(*url+"add", "application/octet-stream", bytes.NewReader(leaf))
				if err != nil {
					mu.Lock()
					statuses["error"]++
					mu.Unlock()
					time.Sleep(100 * time.Millisecond)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				now := time.Now()
				mu.Lock()
				statuses[strconv.Itoa(resp.StatusCode)]++
				requests = append(requests, now.Sub(posted).Seconds())
				if resp.StatusCode == http.StatusOK {
					if idx, err := strconv.ParseUint(strings.TrimSpace(string(body)), 10, 64); err == nil {
						acks = append(acks, ack{now, idx})
					}
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	sent := time.Since(start).Seconds()

	var top uint64
	for _, a := range acks {
		top = max(top, a.index+1)
	}
	deadline := time.Now().Add(300 * time.Second)
	for {
		mu.Lock()
		done := len(seen) > 0 && seen[len(seen)-1].size >= top
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	drained := time.Since(start).Seconds()
	close(stopPoll)
	<-polled

	latencies := make([]float64, 0, len(acks))
	for _, a := range acks {
		i := sort.Search(len(seen), func(i int) bool { return seen[i].size > a.index })
		if i == len(seen) {
			fmt.Fprintf(os.Stderr, "peer-load: index %d is in no checkpoint after 300 s\n", a.index)
			os.Exit(1)
		}
		latencies = append(latencies, max(0, seen[i].at.Sub(a.at).Seconds()))
	}
	out := map[string]any{
		"writers": *writers, "seconds": sent, "leaf_bytes": *leafBytes, "statuses": statuses,
		"accepted": len(acks), "accepted_per_s": float64(len(acks)) / sent,
		"drain_after_sending_s": drained - sent,
		"ack_to_checkpoint_s": percentiles(latencies), "request_s": percentiles(requests),
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
