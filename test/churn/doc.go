// Package churn checks socket counts while connections open and close
// continuously: a dump (netlink or /proc) is not an atomic snapshot, so a
// count taken during churn may differ from the truth, but never by more
// than the number of state changes that happened while it was taken. The
// test brackets each count between two ss(8) dumps and bounds the
// difference by the connections opened and closed in between.
package churn
