package agentproto

import (
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
	// MaxReadSize caps the body of a frame read from the agent. The agent's
	// own requests are small (the largest is the configuration tree, a few
	// KiB), but it forwards passive-check keys unchanged, so a host in its
	// Server= list can make an Export request of any size. A longer frame is
	// read in small chunks and discarded, never held (see FrameError).
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

// headSize is how much of the body of a discarded frame ReadFrame keeps in
// FrameError.Head: room for the id and type, which the agent writes first.
const headSize = 4 << 10

// FrameError reports a frame that ReadFrame read to its end and discarded
// because its payload type is not PayloadJSON or its length is above
// MaxReadSize. The stream is still in step: the next frame can be read.
// Memory used: Head, and a small buffer for the rest.
type FrameError struct {
	// PayloadType and Length are the header's fields.
	PayloadType uint32
	Length      uint32
	// Head is the start of the body, at most 4 KiB of it.
	Head []byte
	// Err is ErrPayloadType or ErrFrameTooLarge.
	Err error
}

// Error describes the frame.
func (e *FrameError) Error() string {
	if errors.Is(e.Err, ErrPayloadType) {
		return fmt.Sprintf("discarded a frame of %d bytes: %v, got %d", e.Length, e.Err, e.PayloadType)
	}
	return fmt.Sprintf("discarded a frame of %d bytes: %v, limit %d", e.Length, e.Err, MaxReadSize)
}

// Unwrap returns ErrPayloadType or ErrFrameTooLarge.
func (e *FrameError) Unwrap() error { return e.Err }

// directReadSize is the largest body read into a buffer allocated from the
// header's length alone; a longer body is allocated whole once that much of
// it has arrived.
const directReadSize = 64 << 10

// ReadFrame reads one frame and returns its body. A frame whose payload
// type is not PayloadJSON or whose length is above MaxReadSize is read to
// its end and discarded: the error is then a *FrameError and the stream is
// still in step. ReadFrame returns io.EOF only when the stream ends cleanly
// before a frame, io.ErrUnexpectedEOF (wrapped) when it ends inside one.
//
// A body is never allocated from the header's length alone: up to 64 KiB it
// is; a longer one is allocated whole only once its first 64 KiB have
// arrived, so a length that the peer does not back with data costs at most
// 64 KiB, and a body costs its size plus 64 KiB.
func ReadFrame(r io.Reader) ([]byte, error) {
	var h [HeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("read frame header: %w", err)
	}
	t := binary.LittleEndian.Uint32(h[0:4])
	n := binary.LittleEndian.Uint32(h[4:8])
	switch {
	case t != PayloadJSON:
		return nil, discard(r, &FrameError{PayloadType: t, Length: n, Err: ErrPayloadType})
	case n > MaxReadSize:
		return nil, discard(r, &FrameError{PayloadType: t, Length: n, Err: ErrFrameTooLarge})
	}
	body := make([]byte, min(n, directReadSize))
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("read frame body of %d bytes: %w", n, unexpected(err))
	}
	if len(body) < int(n) {
		// The peer backed its length with the first 64 KiB: take it at its
		// word, which costs at most MaxReadSize.
		whole := make([]byte, n)
		got := copy(whole, body)
		if m, err := io.ReadFull(r, whole[got:]); err != nil {
			return nil, fmt.Errorf("read frame body of %d bytes, got %d: %w", n, got+m, unexpected(err))
		}
		body = whole
	}
	return body, nil
}

// discard reads the body of the frame fe describes, keeping its head, and
// returns fe; or an error wrapping both fe.Err and io.ErrUnexpectedEOF if
// the stream ends first.
func discard(r io.Reader, fe *FrameError) error {
	head := make([]byte, min(fe.Length, headSize))
	got, err := io.ReadFull(r, head)
	if err == nil {
		var rest int64
		rest, err = io.CopyN(io.Discard, r, int64(fe.Length)-int64(len(head)))
		got += int(rest)
	}
	if err != nil {
		return fmt.Errorf("read frame body of %d bytes (%w), got %d: %w", fe.Length, fe.Err, got, unexpected(err))
	}
	fe.Head = head
	return fe
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
