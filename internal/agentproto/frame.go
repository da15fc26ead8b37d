package agentproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// Frame layout: a 4-byte little-endian payload type (always PayloadJSON), a
// 4-byte little-endian body length, then the JSON body.
const (
	// PayloadJSON is the only payload type agent 2 knows.
	PayloadJSON uint32 = 1
	// HeaderSize is the size of the frame header.
	HeaderSize = 8
	// MaxReadSize caps the body of a frame read from the agent. Requests are
	// small (the largest is the configuration tree, a few KiB); a larger
	// length means the stream is corrupt, and is refused before anything is
	// allocated for it.
	MaxReadSize = 16 << 20
	// MaxWriteSize caps the body of a frame sent to the agent: it reads the
	// length as a signed 32-bit number.
	MaxWriteSize = math.MaxInt32
)

// Frame errors, checked with errors.Is.
var (
	// ErrPayloadType reports a header whose type is not PayloadJSON.
	ErrPayloadType = errors.New("only json payload type (1) supported")
	// ErrFrameTooLarge reports a length above MaxReadSize (reading) or
	// MaxWriteSize (writing).
	ErrFrameTooLarge = errors.New("frame too large")
)

// directReadSize is the largest body read into a buffer allocated up front;
// longer bodies grow their buffer as bytes arrive, so a length that the
// peer does not back with data costs no more memory than the data sent.
const directReadSize = 64 << 10

// ReadFrame reads one frame and returns its body. It returns io.EOF only
// when the stream ends cleanly before a frame, io.ErrUnexpectedEOF (wrapped)
// when it ends inside one.
func ReadFrame(r io.Reader) ([]byte, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("read frame header: %w", err)
	}
	if t := binary.LittleEndian.Uint32(h[0:4]); t != PayloadJSON {
		return nil, fmt.Errorf("read frame header: %w, got %d", ErrPayloadType, t)
	}
	n := binary.LittleEndian.Uint32(h[4:8])
	if n > MaxReadSize {
		return nil, fmt.Errorf("read frame header: %w: length %d, limit %d", ErrFrameTooLarge, n, MaxReadSize)
	}
	if n <= directReadSize {
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return nil, fmt.Errorf("read frame body of %d bytes: %w", n, unexpected(err))
		}
		return body, nil
	}
	var buf bytes.Buffer
	if got, err := io.CopyN(&buf, r, int64(n)); err != nil {
		return nil, fmt.Errorf("read frame body of %d bytes, got %d: %w", n, got, unexpected(err))
	}
	return buf.Bytes(), nil
}

// unexpected turns io.EOF inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendFrame appends the frame holding body to dst.
func AppendFrame(dst, body []byte) ([]byte, error) {
	if len(body) > MaxWriteSize {
		return dst, fmt.Errorf("write frame: %w: length %d, limit %d", ErrFrameTooLarge, len(body), MaxWriteSize)
	}
	dst = binary.LittleEndian.AppendUint32(dst, PayloadJSON)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(body)))
	return append(dst, body...), nil
}

// WriteFrame writes the frame holding body with a single Write call. It does
// not lock: concurrent writers share a Conn instead.
func WriteFrame(w io.Writer, body []byte) error {
	frame, err := AppendFrame(make([]byte, 0, HeaderSize+len(body)), body)
	if err != nil {
		return err
	}
	if _, err := w.Write(frame); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}
