package agent

import "strconv"

// isUint reports whether s is a whole number, as a count is.
func isUint(s string) bool {
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}
