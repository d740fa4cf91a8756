//! The panel drivers against what the controllers' datasheets expect, through the
//! recording bus.

use embedded_graphics::pixelcolor::raw::RawU16;
use embedded_graphics::pixelcolor::Rgb565;
use embedded_graphics::prelude::*;

use super::bands::PanelWriter;
use super::driver::{init_panel, Controller, PanelDriver, PanelGeometry};
use emotion_pi_doubles::{Command, FakeBus, FakePin, NoDelay};

use super::interface::SPIDEV_CHUNK;
use super::PanelError;
use crate::output::ui::Framebuffer;

// MIPI DCS / ST7789V / ILI9341 command codes (datasheets, "command list").
const SLPOUT: u8 = 0x11;
const NORON: u8 = 0x13;
const INVON: u8 = 0x21;
const INVOFF: u8 = 0x20;
const DISPON: u8 = 0x29;
const CASET: u8 = 0x2A;
const RASET: u8 = 0x2B;
const RAMWR: u8 = 0x2C;
const MADCTL: u8 = 0x36;
const COLMOD: u8 = 0x3A;
// MADCTL bits: row/column exchange (landscape) and BGR subpixel order.
const MADCTL_MV: u8 = 0x20;
const MADCTL_BGR: u8 = 0x08;

fn geometry(controller: Controller, width: u16, height: u16, rotation: u16) -> PanelGeometry {
    PanelGeometry { controller, width, height, rotation, invert: false, bgr: false, offset_x: 0, offset_y: 0 }
}

fn open(bus: &FakeBus, geometry: &PanelGeometry) -> Box<dyn PanelDriver> {
    init_panel(geometry, bus.spi(), bus.dc_pin(), Some(bus.reset_pin()), SPIDEV_CHUNK, &mut NoDelay).unwrap()
}

fn command(commands: &[Command], code: u8) -> &Command {
    commands.iter().find(|c| c.code == code).unwrap_or_else(|| panic!("no command {code:#04x} in {commands:?}"))
}

/// Start and inclusive end as two big-endian 16-bit words, as CASET and RASET take them.
fn window(start: u16, end: u16) -> Vec<u8> {
    [start.to_be_bytes(), end.to_be_bytes()].concat()
}

#[test]
fn st7789_init_wakes_sets_16_bit_colour_and_turns_the_display_on() {
    let bus = FakeBus::new(true);
    let mut settings = geometry(Controller::St7789, 240, 240, 0);
    settings.invert = true;
    open(&bus, &settings);
    assert_eq!(bus.reset_levels(), vec![false, true], "reset is a low pulse");
    let init = bus.take_commands();
    let codes: Vec<u8> = init.iter().map(|c| c.code).collect();
    assert_eq!(codes.first(), Some(&SLPOUT), "{codes:02x?}");
    assert_eq!(codes.last(), Some(&DISPON), "{codes:02x?}");
    assert!(codes.contains(&NORON) && codes.contains(&INVON) && !codes.contains(&INVOFF), "{codes:02x?}");
    // COLMOD 0x55: 16 bits per pixel for both the RGB and the control interface.
    assert_eq!(command(&init, COLMOD).data, vec![0x55]);
    let madctl = command(&init, MADCTL).data[0];
    assert_eq!(madctl & (MADCTL_MV | MADCTL_BGR), 0, "portrait, RGB: {madctl:#04x}");
}

#[test]
fn a_full_st7789_frame_is_one_window_of_big_endian_pixels_in_spidev_sized_transfers() {
    let bus = FakeBus::new(true);
    let mut panel = open(&bus, &geometry(Controller::St7789, 240, 240, 0));
    bus.take_commands();
    let pixels: Vec<Rgb565> =
        (0..240 * 240u32).map(|i| Rgb565::new((i % 32) as u8, (i / 240 % 64) as u8, (i % 29) as u8)).collect();
    panel.write_area(0, 0, 240, 240, &pixels).unwrap();
    let frame = bus.take_commands();
    assert_eq!(frame.iter().map(|c| c.code).collect::<Vec<_>>(), vec![CASET, RASET, RAMWR]);
    assert_eq!(frame[0].data, window(0, 239));
    assert_eq!(frame[1].data, window(0, 239));
    let expected: Vec<u8> = pixels
        .iter()
        .flat_map(|p| ((u16::from(p.r()) << 11) | (u16::from(p.g()) << 5) | u16::from(p.b())).to_be_bytes())
        .collect();
    assert_eq!(frame[2].data.len(), 240 * 240 * 2);
    assert!(frame[2].data == expected, "pixel bytes differ from RGB565 big-endian");
    let transfers = &frame[2].transfers;
    assert!(transfers.iter().all(|&n| n <= SPIDEV_CHUNK && n % 2 == 0), "{transfers:?}");
    assert_eq!(transfers.len(), (240 * 240 * 2usize).div_ceil(SPIDEV_CHUNK));
}

#[test]
fn ili9341_landscape_exchanges_rows_and_columns_and_addresses_320_columns() {
    let bus = FakeBus::new(true);
    let mut settings = geometry(Controller::Ili9341, 320, 240, 90);
    settings.bgr = true;
    let mut panel = open(&bus, &settings);
    let init = bus.take_commands();
    assert_eq!(command(&init, COLMOD).data, vec![0x55]);
    let madctl = command(&init, MADCTL).data[0];
    assert_eq!(madctl & (MADCTL_MV | MADCTL_BGR), MADCTL_MV | MADCTL_BGR, "landscape, BGR: {madctl:#04x}");
    assert_eq!(init.last().map(|c| c.code), Some(DISPON));
    panel.write_area(10, 20, 300, 200, &vec![Rgb565::RED; 300 * 200]).unwrap();
    let frame = bus.take_commands();
    assert_eq!(frame[0].data, window(10, 309));
    assert_eq!(frame[1].data, window(20, 219));
    assert_eq!(frame[2].data[..2], RawU16::from(Rgb565::RED).into_inner().to_be_bytes());
}

#[test]
fn a_bad_rotation_is_refused_with_its_value() {
    let bus = FakeBus::new(true);
    let result = init_panel(
        &geometry(Controller::St7789, 240, 240, 45),
        bus.spi(),
        bus.dc_pin(),
        None::<FakePin>,
        SPIDEV_CHUNK,
        &mut NoDelay,
    );
    let err = result.err().expect("a 45 degree rotation is refused");
    assert!(matches!(err, PanelError::Rotation(45)), "{err:?}");
    assert_eq!(err.to_string(), "rotation 45 is not 0, 90, 180 or 270");
}

#[test]
fn the_writer_sends_the_first_screen_whole_then_only_the_changed_rectangle() {
    let bus = FakeBus::new(false);
    let mut writer = PanelWriter::new(open(&bus, &geometry(Controller::St7789, 240, 240, 0)));
    bus.take_byte_count();
    let mut screen = Framebuffer::new(240, 240);
    let first = writer.push(&screen).unwrap();
    assert_eq!((first.rectangles, first.pixels), (1, 240 * 240));
    // CASET and RASET are a command byte and 4 data bytes each, RAMWR one byte.
    assert_eq!(bus.take_byte_count(), 11 + 240 * 240 * 2);
    assert_eq!(writer.push(&screen).unwrap().rectangles, 0);
    assert_eq!(bus.take_byte_count(), 0);
    embedded_graphics::primitives::Rectangle::new(Point::new(100, 50), Size::new(20, 3))
        .into_styled(embedded_graphics::primitives::PrimitiveStyle::with_fill(Rgb565::GREEN))
        .draw(&mut screen)
        .unwrap();
    let changed = writer.push(&screen).unwrap();
    // Rows 50-52 lie in the band of rows 48-55.
    assert_eq!((changed.rectangles, changed.pixels), (1, 20 * 8));
    assert_eq!(bus.take_byte_count(), 11 + 20 * 8 * 2);
}
