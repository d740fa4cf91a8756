/* vivid_feed: plays a raw frame into vivid's video output, looped back into its capture.
 *
 *   vivid_feed OUTPUT CAPTURE FOURCC WIDTH HEIGHT FRAME_FILE SECONDS
 *
 * Sets both HDMI ends to 640x480p60 timings (so the loop copies without scaling, which
 * oopses the 6.1 kernel when the sizes differ), turns on vivid's "Loop Video" control on
 * the capture node and its text overlay off, sets the output format to
 * FOURCC WIDTH x HEIGHT, and streams the frame from memory-mapped buffers (the output
 * node has no write()) at the driver's rate for SECONDS (0 = until killed). Built for the emulated board by tools/board.sh;
 * the board's busybox has no V4L2 tools. See the kernel's vivid documentation, "Video Looping".
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/v4l2-dv-timings.h>
#include <linux/videodev2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int fail(const char *what, const char *name)
{
	fprintf(stderr, "vivid_feed: %s %s: %s\n", what, name, strerror(errno));
	return 1;
}

/* Sets the first control whose name is `name` to `value`. */
static int set_control(int fd, const char *device, const char *name, int value)
{
	struct v4l2_queryctrl query = { .id = V4L2_CTRL_FLAG_NEXT_CTRL };
	while (ioctl(fd, VIDIOC_QUERYCTRL, &query) == 0) {
		if (strcmp((const char *)query.name, name) == 0) {
			struct v4l2_control control = { .id = query.id, .value = value };
			if (ioctl(fd, VIDIOC_S_CTRL, &control) != 0)
				return fail("cannot set control on", device);
			return 0;
		}
		query.id |= V4L2_CTRL_FLAG_NEXT_CTRL;
	}
	fprintf(stderr, "vivid_feed: %s has no control \"%s\"\n", device, name);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 8) {
		fprintf(stderr, "usage: vivid_feed OUTPUT CAPTURE FOURCC WIDTH HEIGHT FRAME_FILE SECONDS\n");
		return 2;
	}
	const char *output = argv[1], *capture = argv[2], *fourcc = argv[3], *frame_file = argv[6];
	unsigned width = (unsigned)atoi(argv[4]), height = (unsigned)atoi(argv[5]);
	int seconds = atoi(argv[7]);
	if (strlen(fourcc) != 4) {
		fprintf(stderr, "vivid_feed: FOURCC must be four characters, not %s\n", fourcc);
		return 2;
	}

	int frame_fd = open(frame_file, O_RDONLY);
	struct stat info;
	if (frame_fd < 0 || fstat(frame_fd, &info) != 0)
		return fail("cannot open", frame_file);
	char *frame = malloc((size_t)info.st_size);
	if (!frame || read(frame_fd, frame, (size_t)info.st_size) != info.st_size)
		return fail("cannot read", frame_file);
	close(frame_fd);

	int cap = open(capture, O_RDWR);
	if (cap < 0)
		return fail("cannot open", capture);
	int out = open(output, O_RDWR);
	if (out < 0)
		return fail("cannot open", output);
	struct v4l2_dv_timings timings = V4L2_DV_BT_CEA_640X480P59_94;
	if (ioctl(cap, VIDIOC_S_DV_TIMINGS, &timings) != 0)
		return fail("cannot set 640x480p60 timings on", capture);
	if (ioctl(out, VIDIOC_S_DV_TIMINGS, &timings) != 0)
		return fail("cannot set 640x480p60 timings on", output);
	/* No text drawn over the looped picture. */
	if (set_control(cap, capture, "Loop Video", 1) != 0 || set_control(cap, capture, "OSD Text Mode", 2) != 0)
		return 1;
	struct v4l2_format cap_format = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	if (ioctl(cap, VIDIOC_G_FMT, &cap_format) != 0)
		return fail("cannot read the format of", capture);
	cap_format.fmt.pix.pixelformat = v4l2_fourcc(fourcc[0], fourcc[1], fourcc[2], fourcc[3]);
	cap_format.fmt.pix.width = width;
	cap_format.fmt.pix.height = height;
	cap_format.fmt.pix.bytesperline = 0;
	if (ioctl(cap, VIDIOC_S_FMT, &cap_format) != 0)
		return fail("cannot set the format of", capture);
	close(cap);
	struct v4l2_format format = { .type = V4L2_BUF_TYPE_VIDEO_OUTPUT };
	if (ioctl(out, VIDIOC_G_FMT, &format) != 0)
		return fail("cannot read the format of", output);
	format.fmt.pix.pixelformat = v4l2_fourcc(fourcc[0], fourcc[1], fourcc[2], fourcc[3]);
	format.fmt.pix.width = width;
	format.fmt.pix.height = height;
	format.fmt.pix.field = V4L2_FIELD_NONE;
	format.fmt.pix.bytesperline = 0;
	if (ioctl(out, VIDIOC_S_FMT, &format) != 0)
		return fail("cannot set the format of", output);
	if (format.fmt.pix.width != width || format.fmt.pix.height != height
	    || format.fmt.pix.sizeimage != (unsigned)info.st_size) {
		fprintf(stderr, "vivid_feed: %s took %ux%u, %u bytes a frame; the file has %ld\n", output,
			format.fmt.pix.width, format.fmt.pix.height, format.fmt.pix.sizeimage, (long)info.st_size);
		return 1;
	}
	printf("vivid_feed: %s %s %ux%u looped into %s\n", output, fourcc, width, height, capture);
	fflush(stdout);

	struct v4l2_requestbuffers request = {
		.count = 4, .type = V4L2_BUF_TYPE_VIDEO_OUTPUT, .memory = V4L2_MEMORY_MMAP };
	if (ioctl(out, VIDIOC_REQBUFS, &request) != 0 || request.count == 0)
		return fail("cannot get buffers of", output);
	for (unsigned i = 0; i < request.count; i++) {
		struct v4l2_buffer buffer = {
			.index = i, .type = V4L2_BUF_TYPE_VIDEO_OUTPUT, .memory = V4L2_MEMORY_MMAP };
		if (ioctl(out, VIDIOC_QUERYBUF, &buffer) != 0)
			return fail("cannot query a buffer of", output);
		void *memory = mmap(NULL, buffer.length, PROT_READ | PROT_WRITE, MAP_SHARED, out, buffer.m.offset);
		if (memory == MAP_FAILED)
			return fail("cannot map a buffer of", output);
		memcpy(memory, frame, (size_t)info.st_size);
		buffer.bytesused = (unsigned)info.st_size;
		if (ioctl(out, VIDIOC_QBUF, &buffer) != 0)
			return fail("cannot queue a buffer on", output);
	}
	enum v4l2_buf_type type = V4L2_BUF_TYPE_VIDEO_OUTPUT;
	if (ioctl(out, VIDIOC_STREAMON, &type) != 0)
		return fail("cannot start streaming on", output);

	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		/* Every buffer holds the frame, so a returned buffer goes straight back. */
		struct v4l2_buffer buffer = { .type = V4L2_BUF_TYPE_VIDEO_OUTPUT, .memory = V4L2_MEMORY_MMAP };
		if (ioctl(out, VIDIOC_DQBUF, &buffer) != 0)
			return fail("cannot take a buffer back from", output);
		buffer.bytesused = (unsigned)info.st_size;
		if (ioctl(out, VIDIOC_QBUF, &buffer) != 0)
			return fail("cannot queue a buffer on", output);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (seconds > 0 && now.tv_sec - start.tv_sec >= seconds)
			return 0;
	}
}
