package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/ferryio/ferry/fs/progress"
)

// sizeFlag is a byte size flag: a whole number of bytes with an optional
// binary or decimal unit ("16MiB", "64M", "1048576").
type sizeFlag int64

func (s *sizeFlag) String() string { return progress.Bytes(int64(*s)) }

func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = sizeFlag(n)
	return nil
}

// parseSize parses a positive byte size with an optional unit: K, M, G, T
// (powers of 1024, also written KiB, MiB...) or KB, MB, GB, TB (powers of
// 1000), case-insensitive.
func parseSize(v string) (int64, error) {
	s := strings.ToUpper(strings.TrimSpace(v))
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], strings.TrimSpace(s[i:])
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: want a positive size such as 16MiB", v)
	}
	mult := map[string]int64{"": 1, "B": 1,
		"K": 1 << 10, "KI": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MI": 1 << 20, "MIB": 1 << 20,
		"G": 1 << 30, "GI": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TI": 1 << 40, "TIB": 1 << 40,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q: unknown unit %q (want K, M, G, T, KiB..., or KB...)", v, unit)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q: too large", v)
	}
	return n * mult, nil
}
