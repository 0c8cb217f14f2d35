// Command goverify checks a live Sealtrail log with the transparency-dev libraries and
// golang.org/x/mod/sumdb/note only: an outside verifier that shares no code with Sealtrail.
//
// It reads the published keys and the log's checkpoints, entries, proofs and tlog-proof files
// from the query API and checks that
//   - every checkpoint is a C2SP signed note under a published checkpoint key, for the log's
//     origin, with a timestamped cosignature (c2sp.org/tlog-cosignature) under a cosign key;
//   - each checkpoint is consistent with the one before it (RFC 6962 consistency proofs);
//   - the entries [0, size) of the latest checkpoint hash (RFC 6962 leaves) to its root;
//   - every entry's inclusion proof verifies against the latest root;
//   - the tlog-proof files (c2sp.org/tlog-proof) of some events verify on their own.
//
// Usage: goverify -url URL -log LOG (the bearer token in SEALTRAIL_TOKEN). Prints a JSON summary
// and exits 0, or prints what failed to stderr and exits 1.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"time"

	"github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	tproof "github.com/transparency-dev/formats/proof"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

type client struct {
	base  string
	token string
	http  *http.Client
}

func (c *client) get(path string, query url.Values) ([]byte, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return body, nil
}

func (c *client) json(path string, query url.Values, out any) error {
	body, err := c.get(path, query)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

type keys struct {
	Keys []struct {
		Purpose string `json:"purpose"`
		VKey    string `json:"vkey"`
	} `json:"keys"`
}

type logs struct {
	Logs []struct {
		Log    string `json:"log"`
		Origin string `json:"origin"`
	} `json:"logs"`
}

type checkpoints struct {
	Checkpoints []struct {
		Note string `json:"note"`
	} `json:"checkpoints"`
	Next *uint64 `json:"next"`
}

type entries struct {
	Entries []struct {
		Index uint64 `json:"index"`
		Entry []byte `json:"entry"`
	} `json:"entries"`
}

type proofHashes struct {
	Proof [][]byte `json:"proof"`
}

type summary struct {
	Checkpoints       int    `json:"checkpoints"`
	ConsistencyProofs int    `json:"consistency_proofs"`
	Entries           uint64 `json:"entries"`
	InclusionProofs   int    `json:"inclusion_proofs"`
	TLogProofs        int    `json:"tlog_proofs"`
}

// verifiers holds the published checkpoint and cosign keys as note verifiers.
type verifiers struct {
	log    []note.Verifier
	cosign []note.Verifier
}

func loadVerifiers(c *client) (*verifiers, error) {
	var ks keys
	if err := c.json("/v1/keys", nil, &ks); err != nil {
		return nil, err
	}
	v := &verifiers{}
	for _, k := range ks.Keys {
		switch k.Purpose {
		case "checkpoint":
			nv, err := note.NewVerifier(k.VKey)
			if err != nil {
				return nil, fmt.Errorf("checkpoint key %q: %w", k.VKey, err)
			}
			v.log = append(v.log, nv)
		case "cosign":
			nv, err := fnote.NewVerifierForCosignatureV1(k.VKey)
			if err != nil {
				return nil, fmt.Errorf("cosign key %q: %w", k.VKey, err)
			}
			v.cosign = append(v.cosign, nv)
		}
	}
	if len(v.log) == 0 || len(v.cosign) == 0 {
		return nil, errors.New("no checkpoint or no cosign key is published")
	}
	return v, nil
}

// open checks a checkpoint note: signed by one of the log keys for origin, and cosigned.
func (v *verifiers) open(raw []byte, origin string) (*log.Checkpoint, error) {
	var lastErr error
	for _, logKey := range v.log {
		cp, _, n, err := log.ParseCheckpoint(raw, origin, logKey, v.cosign...)
		if err != nil {
			lastErr = err
			continue
		}
		for _, s := range n.Sigs {
			for _, cv := range v.cosign {
				if s.Hash == cv.KeyHash() && s.Name == cv.Name() {
					return cp, nil
				}
			}
		}
		return nil, fmt.Errorf("checkpoint at size %d has no cosignature under a published cosign key", cp.Size)
	}
	return nil, lastErr
}

func run(c *client, logID string, tlogSamples int) (*summary, error) {
	v, err := loadVerifiers(c)
	if err != nil {
		return nil, err
	}
	var ls logs
	if err := c.json("/v1/logs", nil, &ls); err != nil {
		return nil, err
	}
	origin := ""
	for _, l := range ls.Logs {
		if l.Log == logID {
			origin = l.Origin
		}
	}
	if origin == "" {
		return nil, fmt.Errorf("log %q is not listed", logID)
	}
	sum := &summary{}
	hasher := rfc6962.DefaultHasher

	// Every checkpoint, oldest first, each consistent with the one before.
	var prev *log.Checkpoint
	from := uint64(0)
	for {
		var page checkpoints
		q := url.Values{"from": {strconv.FormatUint(from, 10)}}
		if err := c.json("/v1/logs/"+logID+"/checkpoints", q, &page); err != nil {
			return nil, err
		}
		for _, item := range page.Checkpoints {
			cp, err := v.open([]byte(item.Note), origin)
			if err != nil {
				return nil, fmt.Errorf("checkpoint %d of the list: %w", sum.Checkpoints, err)
			}
			sum.Checkpoints++
			if prev != nil && prev.Size < cp.Size && prev.Size > 0 {
				var p proofHashes
				q := url.Values{"from": {strconv.FormatUint(prev.Size, 10)}, "to": {strconv.FormatUint(cp.Size, 10)}}
				if err := c.json("/v1/logs/"+logID+"/proof/consistency", q, &p); err != nil {
					return nil, err
				}
				if err := proof.VerifyConsistency(hasher, prev.Size, cp.Size, p.Proof, prev.Hash, cp.Hash); err != nil {
					return nil, fmt.Errorf("checkpoints at sizes %d and %d are not consistent: %w", prev.Size, cp.Size, err)
				}
				sum.ConsistencyProofs++
			} else if prev != nil && prev.Size == cp.Size && !bytes.Equal(prev.Hash, cp.Hash) {
				return nil, fmt.Errorf("two checkpoints at size %d with different roots", cp.Size)
			} else if prev != nil && prev.Size > cp.Size {
				return nil, fmt.Errorf("checkpoints out of order: size %d after %d", cp.Size, prev.Size)
			}
			prev = cp
		}
		if page.Next == nil {
			break
		}
		from = *page.Next
	}
	if prev == nil {
		return nil, errors.New("the log has no checkpoint")
	}

	// The latest checkpoint, also as served on its own, must be the last of the list.
	raw, err := c.get("/v1/logs/"+logID+"/checkpoint", nil)
	if err != nil {
		return nil, err
	}
	latest, err := v.open(raw, origin)
	if err != nil {
		return nil, fmt.Errorf("latest checkpoint: %w", err)
	}
	if latest.Size != prev.Size || !bytes.Equal(latest.Hash, prev.Hash) {
		return nil, fmt.Errorf("latest checkpoint (size %d) is not the last listed (size %d)", latest.Size, prev.Size)
	}

	// The entries hash to the latest root.
	rf := &compact.RangeFactory{Hash: hasher.HashChildren}
	tree := rf.NewEmptyRange(0)
	leaves := make([][]byte, 0, latest.Size)
	raws := make([][]byte, 0, latest.Size)
	for start := uint64(0); start < latest.Size; {
		end := min(start+500, latest.Size)
		var page entries
		q := url.Values{"start": {strconv.FormatUint(start, 10)}, "end": {strconv.FormatUint(end, 10)}}
		if err := c.json("/v1/logs/"+logID+"/entries", q, &page); err != nil {
			return nil, err
		}
		for _, e := range page.Entries {
			want := uint64(len(leaves))
			if e.Index != want {
				return nil, fmt.Errorf("entries: expected index %d, got %d", want, e.Index)
			}
			leaf := hasher.HashLeaf(e.Entry)
			if err := tree.Append(leaf, nil); err != nil {
				return nil, err
			}
			leaves = append(leaves, leaf)
			raws = append(raws, e.Entry)
		}
		if uint64(len(leaves)) != end {
			return nil, fmt.Errorf("entries: asked for [%d, %d), got up to index %d", start, end, len(leaves))
		}
		start = end
	}
	root, err := tree.GetRootHash(nil)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(root, latest.Hash) {
		return nil, fmt.Errorf("the %d entries do not hash to the root of the checkpoint at that size", latest.Size)
	}
	sum.Entries = latest.Size

	// Each entry's inclusion proof.
	for i, leaf := range leaves {
		var p proofHashes
		q := url.Values{"index": {strconv.Itoa(i)}, "size": {strconv.FormatUint(latest.Size, 10)}}
		if err := c.json("/v1/logs/"+logID+"/proof/inclusion", q, &p); err != nil {
			return nil, err
		}
		if err := proof.VerifyInclusion(hasher, uint64(i), latest.Size, leaf, p.Proof, latest.Hash); err != nil {
			return nil, fmt.Errorf("inclusion proof of entry %d: %w", i, err)
		}
		sum.InclusionProofs++
	}

	// tlog-proof files of a few events, each checked on its own.
	step := max(1, len(raws)/max(1, tlogSamples))
	for i := 0; i < len(raws) && sum.TLogProofs < tlogSamples; i += step {
		var header struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(raws[i], &header); err != nil || header.EventID == "" {
			return nil, fmt.Errorf("entry %d is not a JSON object with an event_id", i)
		}
		file, err := c.get("/v1/events/"+header.EventID+"/tlog-proof", nil)
		if err != nil {
			return nil, err
		}
		var tp tproof.TLogProof
		if err := tp.Unmarshal(file); err != nil {
			return nil, fmt.Errorf("tlog-proof of entry %d: %w", i, err)
		}
		cp, err := v.open(tp.Checkpoint, origin)
		if err != nil {
			return nil, fmt.Errorf("tlog-proof of entry %d: %w", i, err)
		}
		hashes := make([][]byte, len(tp.Hashes))
		for j := range tp.Hashes {
			hashes[j] = tp.Hashes[j][:]
		}
		if tp.Index != uint64(i) {
			return nil, fmt.Errorf("tlog-proof of entry %d names index %d", i, tp.Index)
		}
		if err := proof.VerifyInclusion(hasher, tp.Index, cp.Size, hasher.HashLeaf(raws[i]), hashes, cp.Hash); err != nil {
			return nil, fmt.Errorf("tlog-proof of entry %d: %w", i, err)
		}
		sum.TLogProofs++
	}
	return sum, nil
}

func main() {
	base := flag.String("url", "", "query API base URL")
	logID := flag.String("log", "", "log id")
	samples := flag.Int("tlog-proofs", 5, "how many tlog-proof files to check")
	flag.Parse()
	token := os.Getenv("SEALTRAIL_TOKEN")
	if *base == "" || *logID == "" || token == "" {
		fmt.Fprintln(os.Stderr, "usage: SEALTRAIL_TOKEN=... goverify -url URL -log LOG")
		os.Exit(2)
	}
	c := &client{base: *base, token: token, http: &http.Client{Timeout: 30 * time.Second}}
	sum, err := run(c, *logID, *samples)
	if err != nil {
		fmt.Fprintln(os.Stderr, "verification failed:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(sum)
	fmt.Println(string(out))
}
