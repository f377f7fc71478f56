export const metadata = { title: "ocwrap e2e workspace manager" };

export default function RootLayout({ children }) {
  return (
    <html lang="en">
      <body>{children}</body>
    </html>
  );
}
