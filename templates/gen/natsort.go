package main

import "sort"

// natcasecmp orders strings as the Zabbix frontend's export does (PHP
// strnatcasecmp): case folded to upper case, runs of digits compared as
// numbers (a run starting with 0 compared digit by digit), whitespace
// skipped.
func natcasecmp(a, b string) int {
	if len(a) == 0 || len(b) == 0 {
		return cmpInt(len(a), len(b))
	}
	ai, bi := 0, 0
	// Leading zeros of a number at the very start are skipped.
	for ai+1 < len(a) && a[ai] == '0' && isDigit(a[ai+1]) {
		ai++
	}
	for bi+1 < len(b) && b[bi] == '0' && isDigit(b[bi+1]) {
		bi++
	}
	for {
		for ai < len(a) && isSpace(a[ai]) {
			ai++
		}
		for bi < len(b) && isSpace(b[bi]) {
			bi++
		}
		if ai >= len(a) || bi >= len(b) {
			return cmpInt(len(a)-ai, len(b)-bi)
		}
		if isDigit(a[ai]) && isDigit(b[bi]) {
			var r int
			if a[ai] == '0' || b[bi] == '0' {
				r, ai, bi = compareLeft(a, ai, b, bi)
			} else {
				r, ai, bi = compareRight(a, ai, b, bi)
			}
			if r != 0 {
				return r
			}
			switch {
			case ai >= len(a) && bi >= len(b):
				return 0
			case ai >= len(a):
				return -1
			case bi >= len(b):
				return 1
			}
		}
		ca, cb := upper(a[ai]), upper(b[bi])
		if ca != cb {
			return cmpInt(int(ca), int(cb))
		}
		ai++
		bi++
		switch {
		case ai >= len(a) && bi >= len(b):
			return 0
		case ai >= len(a):
			return -1
		case bi >= len(b):
			return 1
		}
	}
}

// compareRight compares two digit runs by magnitude: the longer run wins,
// else the first differing digit.
func compareRight(a string, ai int, b string, bi int) (int, int, int) {
	bias := 0
	for ; ; ai, bi = ai+1, bi+1 {
		ea := ai >= len(a) || !isDigit(a[ai])
		eb := bi >= len(b) || !isDigit(b[bi])
		switch {
		case ea && eb:
			return bias, ai, bi
		case ea:
			return -1, ai, bi
		case eb:
			return 1, ai, bi
		case a[ai] < b[bi] && bias == 0:
			bias = -1
		case a[ai] > b[bi] && bias == 0:
			bias = 1
		}
	}
}

// compareLeft compares two digit runs digit by digit (fractional parts).
func compareLeft(a string, ai int, b string, bi int) (int, int, int) {
	for ; ; ai, bi = ai+1, bi+1 {
		ea := ai >= len(a) || !isDigit(a[ai])
		eb := bi >= len(b) || !isDigit(b[bi])
		switch {
		case ea && eb:
			return 0, ai, bi
		case ea:
			return -1, ai, bi
		case eb:
			return 1, ai, bi
		case a[ai] < b[bi]:
			return -1, ai, bi
		case a[ai] > b[bi]:
			return 1, ai, bi
		}
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}
func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// sortedBy returns a copy of s stably sorted by the keys key gives, each
// compared with natcasecmp, as CArrayHelper::sort does.
func sortedBy[T any](s []T, key func(T) []string) []T {
	out := append([]T(nil), s...)
	sort.SliceStable(out, func(i, j int) bool {
		ki, kj := key(out[i]), key(out[j])
		for n := range ki {
			if c := natcasecmp(ki[n], kj[n]); c != 0 {
				return c < 0
			}
		}
		return false
	})
	return out
}
