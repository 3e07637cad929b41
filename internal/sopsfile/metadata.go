package sopsfile

import (
	"errors"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The sops metadata is the top-level key "sops" of YAML and JSON files, the
// section [sops] of INI files, whose keys are flattened, and the keys
// sops_… of dotenv files, flattened too. Flattened keys join the path with
// __map_ and __list_N (sops's stores/flatten.go).

const (
	metadataKey   = "sops"
	flatPrefix    = metadataKey + "_"
	mapSeparator  = "__map_"
	listSeparator = "__list_"
)

// extractNested takes the "sops" mapping of the first document out of
// every document (sops's MetadataFlattenNone).
func extractNested(branches []branch) ([]branch, branch, error) {
	var md branch
	found := false
	for bi, b := range branches {
		kept := b[:0]
		for _, it := range b {
			if k, ok := it.key.(string); !ok || k != metadataKey {
				kept = append(kept, it)
				continue
			}
			if bi == 0 {
				if found {
					return nil, nil, errors.New("the sops metadata appears twice")
				}
				found = true
				m, ok := it.value.(branch)
				if !ok {
					return nil, nil, errors.New("the sops metadata is not a mapping")
				}
				md = m
			}
		}
		branches[bi] = kept
	}
	if md == nil {
		return nil, nil, ErrNoMetadata
	}
	return branches, md, nil
}

// extractSection takes the INI section "sops" out, with its flattened keys
// and its escaped newlines (sops's MetadataFlattenBelowTop).
func extractSection(branches []branch) ([]branch, branch, error) {
	branches, md, err := extractNested(branches)
	if err != nil {
		return nil, nil, err
	}
	for i, it := range md {
		if s, ok := it.value.(string); ok {
			md[i].value = strings.ReplaceAll(s, "\\n", "\n")
		}
	}
	md, err = unflatten(md)
	return branches, md, err
}

// extractFlat takes the keys sops_… of the first branch out (sops's
// MetadataFlattenFull, for dotenv).
func extractFlat(branches []branch) ([]branch, branch, error) {
	var md branch
	if len(branches) > 0 {
		kept := branches[0][:0]
		for _, it := range branches[0] {
			if k, ok := it.key.(string); ok && strings.HasPrefix(k, flatPrefix) {
				md = append(md, item{key: k[len(flatPrefix):], value: it.value})
				continue
			}
			kept = append(kept, it)
		}
		branches[0] = kept
	}
	if md == nil {
		return nil, nil, ErrNoMetadata
	}
	md, err := unflatten(md)
	return branches, md, err
}

// flatNode is a node of the tree that flattened keys build.
type flatNode struct {
	value   *any
	subkeys map[string]*flatNode
	indices map[int]*flatNode
}

func tokenize(path string) []any {
	const (
		normal = iota
		inMap
		inList
	)
	var tokens []any
	state, last, i := normal, 0, 0
	finish := func() {
		switch state {
		case normal:
			tokens = append(tokens, path[last:i])
		case inMap:
			tokens = append(tokens, path[last+len(mapSeparator):i])
		case inList:
			pos, _ := strconv.Atoi(path[last+len(listSeparator) : i])
			tokens = append(tokens, pos)
		}
		last = i
	}
	for i < len(path) {
		switch {
		case strings.HasPrefix(path[i:], mapSeparator):
			finish()
			state = inMap
			i += len(mapSeparator)
		case strings.HasPrefix(path[i:], listSeparator):
			finish()
			state = inList
			i += len(listSeparator)
		default:
			i++
		}
	}
	finish()
	return tokens
}

func unflatten(b branch) (branch, error) {
	root := &flatNode{}
	for _, it := range b {
		if _, ok := it.key.(Comment); ok {
			continue
		}
		k, ok := it.key.(string)
		if !ok {
			return nil, errors.New("a metadata key that is not a string")
		}
		n := root
		for _, t := range tokenize(k) {
			var next *flatNode
			switch t := t.(type) {
			case string:
				if n.subkeys == nil {
					n.subkeys = map[string]*flatNode{}
				}
				if next = n.subkeys[t]; next == nil {
					next = &flatNode{}
					n.subkeys[t] = next
				}
			case int:
				if t < 0 || t >= maxValues {
					return nil, errors.New("a metadata list index out of range")
				}
				if n.indices == nil {
					n.indices = map[int]*flatNode{}
				}
				if next = n.indices[t]; next == nil {
					next = &flatNode{}
					n.indices[t] = next
				}
			}
			n = next
		}
		if n.value != nil {
			return nil, errors.New("a metadata key appears twice")
		}
		v := it.value
		n.value = &v
	}
	out, err := root.convert(0)
	if err != nil {
		return nil, err
	}
	if tb, ok := out.(branch); ok {
		return tb, nil
	}
	return nil, errors.New("the metadata is not a mapping")
}

func (n *flatNode) convert(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("the metadata is too deep")
	}
	kinds := 0
	for _, has := range []bool{n.value != nil, len(n.subkeys) > 0, len(n.indices) > 0} {
		if has {
			kinds++
		}
	}
	switch {
	case kinds > 1:
		return nil, errors.New("a metadata key is both a value and a mapping or a list")
	case n.value != nil:
		return *n.value, nil
	case len(n.subkeys) > 0:
		keys := make([]string, 0, len(n.subkeys))
		for k := range n.subkeys {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := make(branch, len(keys))
		for i, k := range keys {
			v, err := n.subkeys[k].convert(depth + 1)
			if err != nil {
				return nil, err
			}
			out[i] = item{key: k, value: v}
		}
		return out, nil
	case len(n.indices) > 0:
		lo, hi := math.MaxInt, math.MinInt
		for k := range n.indices {
			lo, hi = min(lo, k), max(hi, k)
		}
		if lo != 0 || hi+1 != len(n.indices) {
			return nil, errors.New("a metadata list has gaps")
		}
		out := make([]any, hi+1)
		for k, c := range n.indices {
			v, err := c.convert(depth + 1)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	}
	return branch{}, nil
}

// fields is a metadata mapping as sops decodes it with mapstructure:
// comments dropped, a field found by its exact name or else by a name equal
// in case, values converted weakly (a string "2" is the number 2).
type fields map[string]any

func toFields(b branch) (fields, error) {
	out := fields{}
	for _, it := range b {
		if _, ok := it.key.(Comment); ok {
			continue
		}
		k, ok := it.key.(string)
		if !ok {
			return nil, errors.New("a metadata key that is not a string")
		}
		out[k] = dropComments(it.value)
	}
	return out, nil
}

func dropComments(v any) any {
	switch v := v.(type) {
	case branch:
		f, err := toFields(v)
		if err != nil {
			return err
		}
		return f
	case []any:
		out := make([]any, 0, len(v))
		for _, x := range v {
			if _, ok := x.(Comment); !ok {
				out = append(out, dropComments(x))
			}
		}
		return out
	}
	return v
}

func (f fields) get(name string) any {
	if v, ok := f[name]; ok {
		return v
	}
	for k, v := range f {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

var errMetadataType = errors.New("a metadata field has the wrong type")

func (f fields) str(name string) (string, error) {
	switch v := f.get(name).(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case bool:
		if v {
			return "1", nil
		}
		return "0", nil
	case int:
		return strconv.Itoa(v), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case []byte:
		return string(v), nil
	}
	return "", errMetadataType
}

func (f fields) integer(name string) (int, error) {
	switch v := f.get(name).(type) {
	case nil:
		return 0, nil
	case int:
		return v, nil
	case float64:
		return int(v), nil
	case bool:
		if v {
			return 1, nil
		}
		return 0, nil
	case string:
		if v == "" {
			return 0, nil
		}
		i, err := strconv.ParseInt(v, 0, 0)
		if err != nil {
			return 0, errMetadataType
		}
		return int(i), nil
	}
	return 0, errMetadataType
}

func (f fields) boolean(name string) (bool, error) {
	switch v := f.get(name).(type) {
	case nil:
		return false, nil
	case bool:
		return v, nil
	case int:
		return v != 0, nil
	case float64:
		return v != 0, nil
	case string:
		if v == "" {
			return false, nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, errMetadataType
		}
		return b, nil
	}
	return false, errMetadataType
}

// list is a list of mappings; a single mapping is a list of one, as
// mapstructure's weak decoding makes it.
func (f fields) list(name string) ([]fields, error) {
	var items []any
	switch v := f.get(name).(type) {
	case nil:
		return nil, nil
	case []any:
		items = v
	case fields:
		items = []any{v}
	case error:
		return nil, v
	default:
		return nil, errMetadataType
	}
	out := make([]fields, 0, len(items))
	for _, x := range items {
		switch x := x.(type) {
		case fields:
			out = append(out, x)
		case nil:
			out = append(out, fields{})
		case error:
			return nil, x
		default:
			return nil, errMetadataType
		}
	}
	return out, nil
}

// keyTypes are the master key types of sops, in the order sops puts them
// in a group (stores.internalGroupFrom), and whether a creation date is
// required.
var keyTypes = []struct {
	name    string
	created bool
}{
	{"kms", true}, {"gcp_kms", true}, {"hckms", true}, {"azure_kv", true}, {"hc_vault", true}, {"pgp", true}, {"age", false},
}

func readGroup(f fields) ([]MasterKey, bool, error) {
	var group []MasterKey
	found := false
	for _, kt := range keyTypes {
		entries, err := f.list(kt.name)
		if err != nil {
			return nil, false, err
		}
		if len(entries) > 0 {
			found = true
		}
		for _, e := range entries {
			k := MasterKey{Type: kt.name}
			if k.EncryptedKey, err = e.str("enc"); err != nil {
				return nil, false, err
			}
			if kt.created {
				c, err := e.str("created_at")
				if err != nil {
					return nil, false, err
				}
				if _, err := time.Parse(time.RFC3339, c); err != nil {
					return nil, false, errors.New("a master key's created_at is not a time (RFC 3339)")
				}
			}
			switch kt.name {
			case "age":
				k.ID, err = e.str("recipient")
			case "pgp":
				k.ID, err = e.str("fp")
			}
			if err != nil {
				return nil, false, err
			}
			group = append(group, k)
			if len(group) > maxValues {
				return nil, false, errors.New("too many master keys")
			}
		}
	}
	return group, found, nil
}

// readMetadata is sops's metadata.ToInternal.
func readMetadata(md branch) (Metadata, error) {
	var m Metadata
	f, err := toFields(md)
	if err != nil {
		return m, err
	}
	lm, err := f.str("lastmodified")
	if err != nil {
		return m, err
	}
	if m.LastModified, err = time.Parse(time.RFC3339, lm); err != nil {
		return m, errors.New("lastmodified is not a time (RFC 3339)")
	}
	for _, s := range []struct {
		name string
		to   *string
	}{
		{"mac", &m.MAC},
		{"version", &m.Version},
		{"unencrypted_suffix", &m.UnencryptedSuffix},
		{"encrypted_suffix", &m.EncryptedSuffix},
		{"unencrypted_regex", &m.UnencryptedRegex},
		{"encrypted_regex", &m.EncryptedRegex},
		{"unencrypted_comment_regex", &m.UnencryptedCommentRegex},
		{"encrypted_comment_regex", &m.EncryptedCommentRegex},
	} {
		if *s.to, err = f.str(s.name); err != nil {
			return m, err
		}
	}
	if m.ShamirThreshold, err = f.integer("shamir_threshold"); err != nil {
		return m, err
	}
	if m.MACOnlyEncrypted, err = f.boolean("mac_only_encrypted"); err != nil {
		return m, err
	}
	top, found, err := readGroup(f)
	if err != nil {
		return m, err
	}
	groups, err := f.list("key_groups")
	if err != nil {
		return m, err
	}
	switch {
	case found:
		m.KeyGroups = [][]MasterKey{top}
	case len(groups) > 0:
		for _, g := range groups {
			keys, _, err := readGroup(g)
			if err != nil {
				return m, err
			}
			m.KeyGroups = append(m.KeyGroups, keys)
		}
	default:
		return m, errors.New("no master key in the sops metadata")
	}
	rules := 0
	for _, r := range []string{m.UnencryptedSuffix, m.EncryptedSuffix, m.UnencryptedRegex, m.EncryptedRegex, m.UnencryptedCommentRegex, m.EncryptedCommentRegex} {
		if r != "" {
			rules++
		}
	}
	if rules > 1 {
		return m, errors.New("more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex, unencrypted_regex, encrypted_comment_regex and unencrypted_comment_regex")
	}
	if rules == 0 {
		m.UnencryptedSuffix = "_unencrypted"
	}
	return m, nil
}
